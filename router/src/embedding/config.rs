//! Reads a sentence-transformers model directory: which files hold the
//! weights and tokenizer, and what its module list asks of us after the
//! transformer (pooling mode, normalisation, maximum sequence length).
//!
//! We only implement what all-MiniLM-L6-v2 uses (mean pooling, optional
//! Normalize). A directory that asks for anything else is refused at load
//! time rather than silently producing vectors that differ from
//! sentence-transformers'.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::EmbeddingError;

/// Everything `Embedder::load` needs to know about a model directory.
#[derive(Debug)]
pub(crate) struct ModelLayout {
    pub bert_config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: PathBuf,
    /// Tokens per input including [CLS] and [SEP]; longer inputs are cut
    /// (sentence-transformers' `max_seq_length`).
    pub max_seq_length: usize,
    /// Whether the module list ends in `Normalize` (unit-length vectors).
    pub normalize: bool,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// `1_Pooling/config.json`. Newer sentence-transformers versions add modes;
/// absent ones default to off.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

impl ModelLayout {
    pub fn read(dir: &Path) -> Result<Self, EmbeddingError> {
        if !dir.is_dir() {
            return Err(EmbeddingError::ModelMissing {
                missing: dir.to_path_buf(),
            });
        }
        let modules: Vec<Module> = read_json(&dir.join("modules.json"))?;
        let load_err = |message: String| EmbeddingError::Load {
            path: dir.to_path_buf(),
            message,
        };

        // The first module must be the transformer itself, stored at the
        // top of the directory; then pooling; then optionally Normalize.
        let kinds: Vec<&str> = modules.iter().map(|m| short_kind(&m.kind)).collect();
        let normalize = match kinds.as_slice() {
            ["Transformer", "Pooling"] => false,
            ["Transformer", "Pooling", "Normalize"] => true,
            other => {
                return Err(load_err(format!(
                    "unsupported sentence-transformers modules {other:?}; \
                     expected Transformer, Pooling[, Normalize]"
                )))
            }
        };
        if !modules[0].path.is_empty() {
            return Err(load_err(format!(
                "the Transformer module lives in {:?}; only a top-level transformer is supported",
                modules[0].path
            )));
        }

        let pooling: PoolingConfig = read_json(&dir.join(&modules[1].path).join("config.json"))?;
        let mean_only = pooling.pooling_mode_mean_tokens
            && !(pooling.pooling_mode_cls_token
                || pooling.pooling_mode_max_tokens
                || pooling.pooling_mode_mean_sqrt_len_tokens
                || pooling.pooling_mode_weightedmean_tokens
                || pooling.pooling_mode_lasttoken);
        if !mean_only {
            return Err(load_err(
                "the pooling module is not plain mean pooling, the only mode implemented".into(),
            ));
        }

        let st: SentenceBertConfig = read_json(&dir.join("sentence_bert_config.json"))?;
        if st.max_seq_length < 2 {
            return Err(load_err(format!(
                "max_seq_length {} leaves no room for [CLS] and [SEP]",
                st.max_seq_length
            )));
        }

        let layout = ModelLayout {
            bert_config: dir.join("config.json"),
            tokenizer: dir.join("tokenizer.json"),
            weights: dir.join("model.safetensors"),
            max_seq_length: st.max_seq_length,
            normalize,
        };
        for file in [&layout.bert_config, &layout.tokenizer, &layout.weights] {
            if !file.is_file() {
                return Err(EmbeddingError::ModelMissing {
                    missing: file.clone(),
                });
            }
        }
        Ok(layout)
    }
}

/// "sentence_transformers.models.Pooling" -> "Pooling".
fn short_kind(kind: &str) -> &str {
    kind.rsplit('.').next().unwrap_or(kind)
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EmbeddingError> {
    let bytes = std::fs::read(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            EmbeddingError::ModelMissing {
                missing: path.to_path_buf(),
            }
        } else {
            EmbeddingError::Load {
                path: path.to_path_buf(),
                message: err.to_string(),
            }
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|err| EmbeddingError::Load {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, body: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    fn minilm_like(dir: &Path, pooling: &str) {
        write(
            dir,
            "modules.json",
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
                {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
                {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        );
        write(dir, "1_Pooling/config.json", pooling);
        write(
            dir,
            "sentence_bert_config.json",
            r#"{"max_seq_length": 256, "do_lower_case": false}"#,
        );
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            write(dir, f, "{}");
        }
    }

    #[test]
    fn reads_minilm_layout() {
        let dir = tempfile::tempdir().unwrap();
        minilm_like(
            dir.path(),
            r#"{"word_embedding_dimension":384,"pooling_mode_mean_tokens":true}"#,
        );
        let layout = ModelLayout::read(dir.path()).unwrap();
        assert_eq!(layout.max_seq_length, 256);
        assert!(layout.normalize);
    }

    #[test]
    fn refuses_other_pooling() {
        let dir = tempfile::tempdir().unwrap();
        minilm_like(
            dir.path(),
            r#"{"pooling_mode_mean_tokens":false,"pooling_mode_cls_token":true}"#,
        );
        let err = ModelLayout::read(dir.path()).unwrap_err();
        assert!(matches!(err, EmbeddingError::Load { .. }), "{err}");
    }

    #[test]
    fn missing_dir_and_missing_weights_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("nope");
        let err = ModelLayout::read(&absent).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(err.to_string().contains("scripts/fetch-model"), "{err}");

        minilm_like(dir.path(), r#"{"pooling_mode_mean_tokens":true}"#);
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        let err = ModelLayout::read(dir.path()).unwrap_err();
        assert!(
            matches!(&err, EmbeddingError::ModelMissing { missing } if missing.ends_with("model.safetensors")),
            "{err}"
        );
    }
}
