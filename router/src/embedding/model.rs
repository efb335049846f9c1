//! The embedding model itself: tokenise, run BERT on the CPU, mean-pool
//! over the attention mask, L2-normalise. Mirrors what sentence-transformers
//! does for all-MiniLM-L6-v2 so our vectors match the ones Chroma's default
//! embedding function produces for the same text.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::config::{read_json, ModelLayout};
use super::EmbeddingError;

/// Most sequences per forward pass: amortises per-call overhead while
/// keeping the attention tensors (batch x heads x len x len) small at len 256.
pub const BATCH_SIZE: usize = 32;

/// A loaded sentence-transformers BERT model. Immutable after load, so one
/// instance serves any number of threads.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    normalize: bool,
    dimension: usize,
}

impl Embedder {
    /// Loads the model from a sentence-transformers directory (the layout
    /// `scripts/fetch-model` produces).
    pub fn load(model_dir: &Path) -> Result<Self, EmbeddingError> {
        let layout = ModelLayout::read(model_dir)?;
        let device = Device::Cpu;

        let config: BertConfig = read_json(&layout.bert_config)?;
        if layout.max_seq_length > config.max_position_embeddings {
            return Err(EmbeddingError::Load {
                path: layout.bert_config.clone(),
                message: format!(
                    "max_seq_length {} exceeds the model's {} positions",
                    layout.max_seq_length, config.max_position_embeddings
                ),
            });
        }

        // Read the weights into memory rather than mmap them: mmap is
        // `unsafe` (the file could change under us) and 90 MB is cheap.
        let load_err = |path: &Path, err: &dyn std::fmt::Display| EmbeddingError::Load {
            path: path.to_path_buf(),
            message: err.to_string(),
        };
        let weights = std::fs::read(&layout.weights).map_err(|e| load_err(&layout.weights, &e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load_err(&layout.weights, &e))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_err(&layout.weights, &e))?;

        let mut tokenizer =
            Tokenizer::from_file(&layout.tokenizer).map_err(|e| load_err(&layout.tokenizer, &e))?;
        // tokenizer.json ships with truncation at 128 and fixed padding to
        // 128; sentence-transformers overrides both (truncate at
        // max_seq_length, pad per batch), so we must too. Padding is done
        // per batch in `forward_batch`.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: layout.max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| load_err(&layout.tokenizer, &e))?;
        tokenizer.with_padding(None);

        Ok(Embedder {
            model,
            tokenizer,
            device,
            normalize: layout.normalize,
            dimension: config.hidden_size,
        })
    }

    /// Length of every vector `embed` returns (384 for all-MiniLM-L6-v2).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One vector per text, in input order. Runs on the calling thread
    /// (and candle's matmuls on the current rayon pool); call it from the
    /// `EmbeddingService` pool, not from an async worker.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;

        // Longest first, so each batch pads only to its own first member.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in batches(&order, |i| encodings[i].get_ids().len()) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.forward_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward_batch(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let len = batch.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        // Pad with id 0 ([PAD]) and mask 0, as the HF tokenizer's padding
        // would; type ids are all 0 for single sentences.
        let mut ids = vec![0u32; batch.len() * len];
        let mut mask = vec![0u32; batch.len() * len];
        for (row, enc) in batch.iter().enumerate() {
            let start = row * len;
            let n = enc.get_ids().len();
            ids[start..start + n].copy_from_slice(enc.get_ids());
            mask[start..start + n].copy_from_slice(enc.get_attention_mask());
        }
        let shape = (batch.len(), len);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let type_ids = ids.zeros_like()?;

        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        let mut pooled = mean_pool(&hidden, &mask)?;
        if self.normalize {
            pooled = l2_normalize(&pooled)?;
        }
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// Splits `order` (sorted by descending length) into forward passes of at
/// most `BATCH_SIZE`, also starting a new one when a sequence is less than
/// half as long as its batch's first: attention costs grow with the square
/// of the padded length, so one 256-token text must not make 31 short ones
/// pay for 256 tokens each. Padding waste stays under 2x.
fn batches(order: &[usize], len: impl Fn(usize) -> usize) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (pos, &i) in order.iter().enumerate() {
        let full = pos - start == BATCH_SIZE;
        let much_shorter = pos > start && len(i) * 2 < len(order[start]);
        if full || much_shorter {
            out.push(&order[start..pos]);
            start = pos;
        }
    }
    if start < order.len() {
        out.push(&order[start..]);
    }
    out
}

/// sentence-transformers' mean pooling: sum of token vectors where the
/// mask is 1, divided by the number of such tokens (clamped at 1e-9 as it
/// does, so an all-padding row gives zeros rather than NaN).
/// `hidden`: (batch, len, dim); `mask`: (batch, len) of 0/1.
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    summed.broadcast_div(&counts)
}

/// torch.nn.functional.normalize(p=2, dim=1): x / max(||x||, 1e-12).
fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norms = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    x.broadcast_div(&norms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cap_size_and_padding() {
        let lens = [256usize, 200, 120, 100, 60, 9, 8, 8, 7];
        let order: Vec<usize> = (0..lens.len()).collect();
        let got: Vec<Vec<usize>> = batches(&order, |i| lens[i])
            .into_iter()
            .map(<[usize]>::to_vec)
            .collect();
        assert_eq!(got, vec![vec![0, 1], vec![2, 3, 4], vec![5, 6, 7, 8]]);

        let order: Vec<usize> = (0..70).collect();
        let sizes: Vec<usize> = batches(&order, |_| 10).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![32, 32, 6]);
        assert!(batches(&[], |_| 1).is_empty());
    }

    #[test]
    fn mean_pool_ignores_padding() {
        let dev = Device::Cpu;
        // Two rows of three tokens, dim 2; the second row's last token is padding.
        let hidden = Tensor::new(
            &[
                [[1f32, 2.], [3., 4.], [5., 6.]],
                [[1., 1.], [3., 3.], [100., 100.]],
            ],
            &dev,
        )
        .unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &dev).unwrap();
        let pooled = mean_pool(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(pooled, vec![vec![3., 4.], vec![2., 2.]]);
    }

    #[test]
    fn all_padding_row_pools_to_zero_not_nan() {
        let dev = Device::Cpu;
        let hidden = Tensor::new(&[[[1f32, 2.]]], &dev).unwrap();
        let mask = Tensor::new(&[[0u32]], &dev).unwrap();
        let pooled = l2_normalize(&mean_pool(&hidden, &mask).unwrap()).unwrap();
        assert_eq!(pooled.to_vec2::<f32>().unwrap(), vec![vec![0., 0.]]);
    }

    #[test]
    fn l2_normalize_gives_unit_rows() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[3f32, 4.], [0., 2.]], &dev).unwrap();
        let y = l2_normalize(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, vec![vec![0.6, 0.8], vec![0., 1.]]);
    }
}
