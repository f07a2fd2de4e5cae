//! Cursor paging: the query every list endpoint takes, and the one page shape they all
//! return.

use std::borrow::Cow;

use serde::Deserialize;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

impl PageQuery {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::InvalidRequest(
                "limit must be between 1 and 100".into(),
            )),
        }
    }
}

/// An item type that is listed in pages. Each resource names its list (`campaigns`,
/// `coupons`, ...) rather than every page saying `items`, so the field name is part
/// of the item type.
pub trait PageItem {
    /// The JSON field the page's items go in.
    const FIELD: &'static str;
}

/// One page of a cursor-paged list: `{ T::FIELD: [...], "next_cursor": ... }`.
/// `next_cursor` is always present, `null` on the last page, so clients test one
/// field rather than its presence.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

// By hand rather than derived, like `Serialize` below: the list's field name is the
// item type's. Named after the item (`CampaignPage`), one schema per item type.
impl<T: ToSchema + PageItem> PartialSchema for Page<T> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(
                T::FIELD,
                ArrayBuilder::new().items(Ref::from_schema_name(T::name())),
            )
            .required(T::FIELD)
            .property(
                "next_cursor",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some("Where the next page starts; `null` on the last page.")),
            )
            .required("next_cursor")
            .into()
    }
}

impl<T: ToSchema + PageItem> ToSchema for Page<T> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("{}Page", T::name()))
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

// By hand rather than derived: serde's field names are fixed per struct, and this one
// is per item type.
impl<T: Serialize + PageItem> Serialize for Page<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Page", 2)?;
        s.serialize_field(T::FIELD, &self.items)?;
        s.serialize_field("next_cursor", &self.next_cursor)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(serde::Serialize)]
    struct Thing {
        n: u32,
    }

    impl PageItem for Thing {
        const FIELD: &'static str = "things";
    }

    #[test]
    fn items_go_under_the_item_types_field_then_next_cursor() {
        let page = Page {
            items: vec![Thing { n: 1 }, Thing { n: 2 }],
            next_cursor: Some("c".into()),
        };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"things":[{"n":1},{"n":2}],"next_cursor":"c"}"#
        );
        let last = Page::<Thing> {
            items: vec![],
            next_cursor: None,
        };
        assert_eq!(
            serde_json::to_value(&last).unwrap(),
            json!({"things": [], "next_cursor": null})
        );
    }
}
