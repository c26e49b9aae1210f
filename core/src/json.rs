//! A JSON value whose objects keep their key order: what [`ImageInfo::to_json`] builds once,
//! so that the command line (which writes it as text) and the Node.js binding (which makes
//! it a JavaScript object) give the same keys and values. The core has no serde: this is
//! the whole model, and writing it is the caller's business.
//!
//! [`ImageInfo::to_json`]: crate::ops::ImageInfo::to_json

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Sizes, offsets and counts: exact as text, even above 2^53 (a JavaScript number
    /// rounds what lies above, as `JSON.parse` would).
    UInt(u64),
    /// A signed number (exit codes).
    Int(i64),
    /// A string.
    String(String),
    /// `[...]`.
    Array(Vec<Json>),
    /// Key–value pairs in the order written.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string value.
    pub fn str(s: impl Into<String>) -> Json {
        Json::String(s.into())
    }

    /// `value` or null.
    pub fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Json) -> Json {
        value.map_or(Json::Null, f)
    }

    /// The member `key` of an object (`None` for other values or a missing key).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}
