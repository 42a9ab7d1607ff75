//! `Path<T>`: the parameters the route captured, typed.

use serde::de::value::{Error as DeError, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use super::{field_error, FromRequest, Rejection};
use crate::context::Ctx;
use crate::h1::Request;

/// The route's captured parameters deserialized into `T`: a struct or map by name
/// (`/users/{id}/posts/{slug}` into `struct { id: u64, slug: String }`), or a single value or
/// a tuple by position (`Path<u64>`, `Path<(u64, String)>`). Values arrive percent-decoded.
///
/// Refused with 400 when a parameter does not fit (`id: invalid digit found in string`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<S, T: DeserializeOwned> FromRequest<S> for Path<T> {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<Path<T>, Rejection> {
        let parsed = match T::deserialize(Probe) {
            Err(ProbeError(Shape::Named)) => by_name(req),
            Err(ProbeError(Shape::Sequence)) => {
                T::deserialize(SeqDeserializer::new(req.params().map(|(_, v)| Value(v))))
                    .map_err(|e| e.to_string())
            }
            _ => {
                let mut values = req.params().map(|(_, v)| v);
                match (values.next(), values.next()) {
                    (Some(v), None) => T::deserialize(Value(v)).map_err(|e| e.to_string()),
                    (None, _) => Err("the route captures no parameter".to_string()),
                    (Some(_), Some(_)) => Err(
                        "the route captures several parameters: take a tuple or a struct"
                            .to_string(),
                    ),
                }
            }
        };
        parsed
            .map(Path)
            .map_err(|e| Rejection::bad_request(format!("path: {e}")))
    }
}

/// Parameters by name, each parsed by [`Value`], with the failing field's name in the error.
fn by_name<T: DeserializeOwned>(req: &Request) -> Result<T, String> {
    let params = MapDeserializer::<_, DeError>::new(req.params().map(|(k, v)| (k, Value(v))));
    serde_path_to_error::deserialize(params).map_err(|e| field_error(&e))
}

/// One parameter's text as a value of whatever type asks: parsed for numbers, booleans and
/// characters, borrowed for strings.
#[derive(Clone, Copy)]
struct Value<'a>(&'a str);

macro_rules! parse_value {
    ($($method:ident => $visit:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                match self.0.parse() {
                    Ok(v) => visitor.$visit(v),
                    Err(e) => Err(de::Error::custom(format!("{:?}: {e}", self.0))),
                }
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Value<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.0)
    }

    parse_value! {
        deserialize_bool => visit_bool,
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_u128 => visit_u128,
        deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
        deserialize_char => visit_char,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'de, 'a> IntoDeserializer<'de, DeError> for Value<'a> {
    type Deserializer = Value<'a>;

    fn into_deserializer(self) -> Value<'a> {
        self
    }
}

/// How a type wants to be deserialized: by field names, or by position.
#[derive(Debug)]
enum Shape {
    Named,
    Sequence,
    Single,
}

#[derive(Debug)]
struct ProbeError(Shape);

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "probed: {:?}", self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<M: std::fmt::Display>(_msg: M) -> ProbeError {
        ProbeError(Shape::Single)
    }
}

/// A deserializer that only records which method the type called: `deserialize_struct` and
/// `deserialize_map` mean named fields, the sequence and tuple methods values by position,
/// anything else a single value.
struct Probe;

impl<'de> de::Deserializer<'de> for Probe {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Shape::Single))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Shape::Sequence))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Shape::Sequence))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Shape::Sequence))
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Shape::Named))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Shape::Named))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct enum identifier ignored_any
    }
}
