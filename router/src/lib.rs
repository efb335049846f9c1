pub mod embedding;
