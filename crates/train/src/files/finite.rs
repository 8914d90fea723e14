//! A serializer that writes nothing and fails on the first number that is not finite,
//! naming where it is: what [`super::to_json`] runs before serde_json.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

/// A non-finite number and where it is (`layers[0].entropy_mean`).
#[derive(Debug)]
pub struct NonFinite(String);

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NonFinite {}

impl ser::Error for NonFinite {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

/// Walks `value` as serde would serialise it.
///
/// # Errors
/// At the first number that is NaN or infinite, naming its path (`layers[0].entropy_mean`).
pub fn check<T: Serialize>(value: &T) -> Result<(), NonFinite> {
    value.serialize(&mut Checker { path: Vec::new() })
}

struct Checker {
    path: Vec<String>,
}

impl Checker {
    fn number(&self, value: f64) -> Result<(), NonFinite> {
        if value.is_finite() {
            return Ok(());
        }
        let mut at = String::new();
        for part in &self.path {
            if !part.starts_with('[') && !at.is_empty() {
                at.push('.');
            }
            at.push_str(part);
        }
        let at = if at.is_empty() { "the value" } else { &at };
        Err(NonFinite(format!("{at} is {value}, not a finite number")))
    }

    fn nested<T: Serialize + ?Sized>(&mut self, part: String, v: &T) -> Result<(), NonFinite> {
        self.path.push(part);
        let result = v.serialize(&mut *self);
        self.path.pop();
        result
    }
}

type Done = Result<(), NonFinite>;

impl ser::Serializer for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_f32(self, v: f32) -> Done {
        self.number(v.into())
    }
    fn serialize_f64(self, v: f64) -> Done {
        self.number(v)
    }
    fn serialize_bool(self, _: bool) -> Done {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Done {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Done {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Done {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Done {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Done {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Done {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Done {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Done {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Done {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Done {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Done {
        Ok(())
    }
    fn serialize_none(self) -> Done {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Done {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Done {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Done {
        self.nested(variant.to_string(), v)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, NonFinite> {
        self.path.push("[0]".into());
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, NonFinite> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, NonFinite> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, NonFinite> {
        self.serialize_seq(None)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, NonFinite> {
        self.path.push(String::new());
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, NonFinite> {
        self.path.push(String::new());
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, NonFinite> {
        self.path.push(String::new());
        Ok(self)
    }
}

/// Sequences keep `[i]` as the last path part and advance it per element.
fn next_index(checker: &mut Checker) {
    if let Some(last) = checker.path.last_mut() {
        let index: usize = last
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .unwrap_or(0);
        *last = format!("[{}]", index + 1);
    }
}

fn element<T: Serialize + ?Sized>(checker: &mut Checker, v: &T) -> Done {
    v.serialize(&mut *checker)?;
    next_index(checker);
    Ok(())
}

fn end(checker: &mut Checker) -> Done {
    checker.path.pop();
    Ok(())
}

impl ser::SerializeSeq for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
        element(self, v)
    }
    fn end(self) -> Done {
        end(self)
    }
}

impl ser::SerializeTuple for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
        element(self, v)
    }
    fn end(self) -> Done {
        end(self)
    }
}

impl ser::SerializeTupleStruct for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
        element(self, v)
    }
    fn end(self) -> Done {
        end(self)
    }
}

impl ser::SerializeTupleVariant for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
        element(self, v)
    }
    fn end(self) -> Done {
        end(self)
    }
}

impl ser::SerializeMap for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        // The key names the value that follows (maps of this crate have string keys).
        let name = key
            .serialize(KeyName)
            .unwrap_or_else(|_| "<key>".to_string());
        if let Some(last) = self.path.last_mut() {
            *last = name;
        }
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
        v.serialize(&mut **self)
    }
    fn end(self) -> Done {
        end(self)
    }
}

impl ser::SerializeStruct for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Done {
        if let Some(last) = self.path.last_mut() {
            *last = key.to_string();
        }
        v.serialize(&mut **self)
    }
    fn end(self) -> Done {
        end(self)
    }
}

impl ser::SerializeStructVariant for &mut Checker {
    type Ok = ();
    type Error = NonFinite;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Done {
        if let Some(last) = self.path.last_mut() {
            *last = key.to_string();
        }
        v.serialize(&mut **self)
    }
    fn end(self) -> Done {
        end(self)
    }
}

/// Map keys that are strings or numbers, as text.
struct KeyName;

impl ser::Serializer for KeyName {
    type Ok = String;
    type Error = NonFinite;
    type SerializeSeq = Impossible<String, NonFinite>;
    type SerializeTuple = Impossible<String, NonFinite>;
    type SerializeTupleStruct = Impossible<String, NonFinite>;
    type SerializeTupleVariant = Impossible<String, NonFinite>;
    type SerializeMap = Impossible<String, NonFinite>;
    type SerializeStruct = Impossible<String, NonFinite>;
    type SerializeStructVariant = Impossible<String, NonFinite>;

    fn serialize_str(self, v: &str) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_bool(self, v: bool) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, v: f32) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_f64(self, v: f64) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, NonFinite> {
        Ok(v.to_string())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, NonFinite> {
        Ok("<bytes>".into())
    }
    fn serialize_none(self) -> Result<String, NonFinite> {
        Ok("<none>".into())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<String, NonFinite> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, NonFinite> {
        Ok("<unit>".into())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<String, NonFinite> {
        Ok(name.into())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, NonFinite> {
        Ok(variant.into())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, NonFinite> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<String, NonFinite> {
        Ok(variant.into())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NonFinite> {
        Err(ser::Error::custom("a sequence as a map key"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NonFinite> {
        Err(ser::Error::custom("a tuple as a map key"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NonFinite> {
        Err(ser::Error::custom("a tuple as a map key"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NonFinite> {
        Err(ser::Error::custom("a tuple as a map key"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NonFinite> {
        Err(ser::Error::custom("a map as a map key"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NonFinite> {
        Err(ser::Error::custom("a struct as a map key"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NonFinite> {
        Err(ser::Error::custom("a struct as a map key"))
    }
}
