//! JSON schemas of the values the API reads and writes as free-form JSON (metadata,
//! filters, embeddings in either of their forms), for the OpenAPI document. Their
//! parsers are `common`'s (`metadata_from_json`, `Filter::parse`) and `records::parse`;
//! these say the same in JSON Schema. Marker types: nothing is built from them.

use std::borrow::Cow;

use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

fn of_type(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(t)
}

/// A metadata scalar: JSON has one number type, so integers and floats are one
/// `number` here (the API keeps which one was sent).
fn scalar() -> AnyOfBuilder {
    AnyOfBuilder::new()
        .item(of_type(Type::String))
        .item(of_type(Type::Number))
        .item(of_type(Type::Boolean))
}

/// A metadata value: a scalar, or a non-empty list of scalars of one type.
fn metadata_value() -> AnyOfBuilder {
    scalar().item(ArrayBuilder::new().items(scalar()).min_items(Some(1)))
}

/// Declares a marker type whose schema is `$schema`, named `$name` in the document.
macro_rules! json_schema {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $schema:expr) => {
        $(#[$doc])*
        pub struct $ty;

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

json_schema!(
    /// A record's or a collection's metadata as stored and answered.
    Metadata,
    "Metadata",
    of_type(Type::Object)
        .description(Some(
            "Keys are non-empty and do not start with `#` or `chroma:`; values are strings, \
             numbers, booleans or non-empty lists of one of those",
        ))
        .additional_properties(Some(Schema::from(metadata_value())))
);

json_schema!(
    /// A record's metadata in a write: a key set to null is removed (update, upsert).
    UpdateMetadata,
    "UpdateMetadata",
    of_type(Type::Object)
        .description(Some(
            "As Metadata; on update and upsert it is merged key by key into the stored one, \
             and a key set to null is removed",
        ))
        .additional_properties(Some(Schema::from(metadata_value().item(of_type(Type::Null)))))
);

json_schema!(
    /// A `where` filter.
    Where,
    "Where",
    of_type(Type::Object).description(Some(
        "A metadata filter: `{\"field\": value}`, `{\"field\": {\"$eq|$ne|$gt|$gte|$lt|$lte\": \
         v}}`, `{\"field\": {\"$in|$nin\": [..]}}`, `{\"field\": {\"$contains|$not_contains\": \
         v}}`, `{\"$and\": [..]}`, `{\"$or\": [..]}`; one key per object",
    ))
);

json_schema!(
    /// A `where_document` filter.
    WhereDocument,
    "WhereDocument",
    of_type(Type::Object).description(Some(
        "A document filter: `{\"$contains|$not_contains|$regex|$not_regex\": \"text\"}`, \
         `{\"$and\": [..]}`, `{\"$or\": [..]}`",
    ))
);

json_schema!(
    /// One embedding in a request.
    EmbeddingInput,
    "EmbeddingInput",
    AnyOfBuilder::new()
        .description(Some(
            "A non-empty list of finite numbers, or a base64 string of little-endian f32 \
             values (pre-flight's supports_base64_encoding)",
        ))
        .item(
            ArrayBuilder::new()
                .items(of_type(Type::Number))
                .min_items(Some(1))
        )
        .item(of_type(Type::String))
);

json_schema!(
    /// A JSON object whose fields the API passes on or renders without a schema of
    /// its own (a collection's `schema`, an embedding function's `config`).
    AnyObject,
    "AnyObject",
    of_type(Type::Object)
);
