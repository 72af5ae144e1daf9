//! A contract router: `args[0]` names the function, the remaining arguments become a
//! typed value, the handler's result becomes the response payload.
//!
//! Arguments follow the Fabric contract API's convention: a parameter of string type
//! takes the argument's raw text, any other type is parsed from JSON. Parameters are
//! positional, so a handler can take a tuple `(String, u64)` or a struct whose fields
//! are in argument order. A result that serializes to a JSON string is returned as raw
//! text, `()` as an empty payload, anything else as JSON.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use medfabric_proto::protos::Response;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};

use crate::error::ShimError;
use crate::stub::{Chaincode, ChaincodeStub, ERROR, OK};

/// A handler's failure: the response status (default 500) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    pub status: i32,
    pub message: String,
}

impl ContractError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { status: ERROR, message: message.into() }
    }

    /// An error with another status (from 400 on; below 500 it still gets no endorsement).
    pub fn with_status(status: i32, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (status {})", self.message, self.status)
    }
}

impl std::error::Error for ContractError {}

impl From<ShimError> for ContractError {
    fn from(e: ShimError) -> Self {
        Self::new(e.to_string())
    }
}

type Handler = Box<dyn Fn(&mut dyn ChaincodeStub, &[Bytes]) -> Response + Send + Sync>;

/// Maps function names to typed handlers; it is itself a [`Chaincode`].
pub struct Router {
    name: String,
    handlers: BTreeMap<String, Handler>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("name", &self.name)
            .field("functions", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Router {
    /// A router for the contract `name` (used in error messages).
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), handlers: BTreeMap::new() }
    }

    /// Routes `function` to `handler`, whose argument type `A` is decoded from the
    /// transaction's parameters.
    pub fn route<A, R, F>(mut self, function: &str, handler: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(&mut dyn ChaincodeStub, A) -> Result<R, ContractError> + Send + Sync + 'static,
    {
        let function_name = function.to_owned();
        let wrapped = move |stub: &mut dyn ChaincodeStub, params: &[Bytes]| -> Response {
            let args = match decode_args::<A>(params) {
                Ok(args) => args,
                Err(e) => {
                    return failure(ContractError::new(format!(
                        "function {function_name}: bad arguments: {e}"
                    )));
                }
            };
            match handler(stub, args).and_then(|result| encode_result(&result)) {
                Ok(payload) => Response { status: OK, message: String::new(), payload },
                Err(e) => failure(e),
            }
        };
        self.handlers.insert(function.to_owned(), Box::new(wrapped));
        self
    }

    /// The function names this router knows.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

fn failure(e: ContractError) -> Response {
    Response { status: e.status, message: e.message, payload: Bytes::new() }
}

impl Chaincode for Router {
    fn invoke(&self, stub: &mut dyn ChaincodeStub) -> Response {
        let args = stub.args().to_vec();
        let Some((function, params)) = args.split_first() else {
            return failure(ContractError::new(format!("contract {}: no function name given", self.name)));
        };
        let function = String::from_utf8_lossy(function);
        match self.handlers.get(function.as_ref()) {
            Some(handler) => handler(stub, params),
            // Fabric's contract API words it the same way.
            None => failure(ContractError::new(format!("unknown function {function:?}"))),
        }
    }
}

fn encode_result<R: Serialize>(result: &R) -> Result<Bytes, ContractError> {
    let value = serde_json::to_value(result)
        .map_err(|e| ContractError::new(format!("result does not serialize: {e}")))?;
    Ok(match value {
        serde_json::Value::Null => Bytes::new(),
        serde_json::Value::String(s) => Bytes::from(s),
        other => Bytes::from(other.to_string()),
    })
}

/// Decodes positional parameters into `A`.
pub fn decode_args<A: DeserializeOwned>(params: &[Bytes]) -> Result<A, ArgsError> {
    let mut de = ArgsDeserializer { params, used: 0 };
    let value = A::deserialize(&mut de)?;
    if de.used < params.len() {
        return Err(ArgsError(format!("expected {} arguments, got {}", de.used, params.len())));
    }
    Ok(value)
}

/// Why parameters did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsError(String);

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgsError {}

impl de::Error for ArgsError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

struct ArgsDeserializer<'a> {
    params: &'a [Bytes],
    used: usize,
}

impl<'de> SeqAccess<'de> for &mut ArgsDeserializer<'de> {
    type Error = ArgsError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ArgsError> {
        let Some(param) = self.params.get(self.used) else { return Ok(None) };
        self.used += 1;
        let index = self.used;
        seed.deserialize(ParamDeserializer(param))
            .map(Some)
            .map_err(|e| ArgsError(format!("argument {index}: {e}")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.params.len() - self.used)
    }
}

impl<'de> Deserializer<'de> for &mut ArgsDeserializer<'de> {
    type Error = ArgsError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_seq(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgsError> {
        // A newtype around one parameter.
        let param = self.params.first().ok_or_else(|| ArgsError("expected 1 argument, got 0".into()))?;
        self.used = 1;
        visitor.visit_newtype_struct(ParamDeserializer(param))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// One parameter: raw text for string targets, JSON for everything else.
struct ParamDeserializer<'de>(&'de [u8]);

impl<'de> ParamDeserializer<'de> {
    fn text(&self) -> Result<&'de str, ArgsError> {
        std::str::from_utf8(self.0).map_err(|_| ArgsError("not valid UTF-8".into()))
    }

    fn json<T>(
        self,
        f: impl FnOnce(&mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>) -> serde_json::Result<T>,
    ) -> Result<T, ArgsError> {
        let mut de = serde_json::Deserializer::from_slice(self.0);
        let value = f(&mut de).map_err(|e| ArgsError(format!("not the expected JSON: {e}")))?;
        de.end().map_err(|e| ArgsError(format!("trailing characters: {e}")))?;
        Ok(value)
    }
}

macro_rules! forward_to_json {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
                self.json(|de| de.$method(visitor))
            }
        )*
    };
}

impl<'de> Deserializer<'de> for ParamDeserializer<'de> {
    type Error = ArgsError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        if serde_json::from_slice::<de::IgnoredAny>(self.0).is_ok() {
            self.json(|de| de.deserialize_any(visitor))
        } else {
            visitor.visit_borrowed_str(self.text()?)
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        let text = self.text()?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(ArgsError(format!("expected one character, got {text:?}"))),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgsError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgsError> {
        self.json(|de| de.deserialize_unit_struct(name, visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgsError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, ArgsError> {
        self.json(|de| de.deserialize_tuple(len, visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ArgsError> {
        self.json(|de| de.deserialize_tuple_struct(name, len, visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ArgsError> {
        self.json(|de| de.deserialize_struct(name, fields, visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ArgsError> {
        // A unit variant may be given as its bare name.
        if serde_json::from_slice::<de::IgnoredAny>(self.0).is_err() {
            let text = self.text()?;
            return visitor.visit_enum(text.into_deserializer());
        }
        self.json(|de| de.deserialize_enum(name, variants, visitor))
    }

    forward_to_json! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_unit deserialize_seq deserialize_map
        deserialize_ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn params(args: &[&str]) -> Vec<Bytes> {
        args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Transfer {
        from: String,
        to: String,
        amount: u64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Meta {
        tags: Vec<String>,
    }

    #[test]
    fn strings_are_raw_and_other_types_json() {
        let (k, n): (String, u64) = decode_args(&params(&["42", "7"])).expect("tuple");
        assert_eq!((k.as_str(), n), ("42", 7));
        let t: Transfer = decode_args(&params(&["alice", "bob", "300"])).expect("struct");
        assert_eq!(t, Transfer { from: "alice".into(), to: "bob".into(), amount: 300 });
        let (m,): (Meta,) = decode_args(&params(&[r#"{"tags":["a","b"]}"#])).expect("json struct");
        assert_eq!(m.tags, vec!["a", "b"]);
        let (a, b): (Option<String>, Vec<u8>) = decode_args(&params(&["x", "[1,2]"])).expect("option, seq");
        assert_eq!((a.as_deref(), b), (Some("x"), vec![1, 2]));
        let (v,): (serde_json::Value,) = decode_args(&params(&["not json"])).expect("any");
        assert_eq!(v, serde_json::Value::String("not json".into()));
        let () = decode_args(&params(&[])).expect("unit");
    }

    #[test]
    fn wrong_counts_and_types_are_errors() {
        assert!(decode_args::<(String, String)>(&params(&["only"])).is_err());
        assert!(decode_args::<(String,)>(&params(&["a", "b"])).is_err());
        assert!(decode_args::<()>(&params(&["a"])).is_err());
        let err = decode_args::<(String, u64)>(&params(&["a", "seven"])).expect_err("not a number");
        assert!(err.to_string().contains("argument 2"), "{err}");
    }

    #[test]
    fn results_encode_as_text_or_json() {
        assert_eq!(encode_result(&"plain").expect("str"), Bytes::from_static(b"plain"));
        assert_eq!(encode_result(&()).expect("unit"), Bytes::new());
        assert_eq!(encode_result(&3u32).expect("number"), Bytes::from_static(b"3"));
        assert_eq!(encode_result(&vec!["a"]).expect("json"), Bytes::from_static(br#"["a"]"#));
    }
}
