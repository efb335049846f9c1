//! The `where` / `where_document` filter language of Chroma (http-api.md, Filters):
//! a typed AST, parsed from JSON with Chroma-style messages, evaluated on records.
//! (Parsing and evaluation are being written; see the foundation issue.)

use serde::{Deserialize, Serialize};

/// A parsed `where` plus `where_document`; either may be absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Filter {}
