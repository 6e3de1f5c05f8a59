//! Fixed-size digests held as bytes, written as lower-case hex.
//!
//! A deploy of 100,000 files holds a blake3 for every file, for every manifest entry and for
//! every entry of the plan; as hex `String`s those were three heap allocations of 64 bytes
//! each per file (issue #15's growth goal). [`Digest`] and [`Fingerprint`] are `Copy` values of
//! 32 and 8 bytes that read and write the same hex text, so the manifest's format is unchanged.

use std::fmt;

/// A blake3 digest of a file's bytes.
/// `Default` is all zeros: the digest of a file not hashed yet.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

/// A short digest of an object's headers ([`crate::headers::Headers::fingerprint`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint([u8; 8]);

impl Digest {
    /// The blake3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from(blake3::hash(bytes))
    }

    /// Reads 64 hex digits (either case); `None` for anything else.
    pub fn parse(hex: &str) -> Option<Self> {
        decode(hex).map(Self)
    }
}

impl Fingerprint {
    /// The first 8 bytes of the blake3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let hash = blake3::hash(bytes);
        let mut short = [0; 8];
        short.copy_from_slice(&hash.as_bytes()[..8]);
        Self(short)
    }

    /// Reads 16 hex digits; `None` for anything else.
    pub fn parse(hex: &str) -> Option<Self> {
        decode(hex).map(Self)
    }
}

/// An object's ETag as the manifest keeps it: the plain MD5 a single-part upload gets (32
/// lower-case hex digits) in 16 bytes, anything else (a multipart ETag, another store's
/// format) as shared text. Cloning either costs no allocation.
#[derive(Clone, PartialEq, Eq)]
pub enum Etag {
    Md5([u8; 16]),
    Other(std::sync::Arc<str>),
}

impl Etag {
    /// Whether this is the ETag `text` (as a listing shows it, normalized).
    pub fn is(&self, text: &str) -> bool {
        match self {
            Etag::Md5(bytes) => decode::<16>(text).is_some_and(|b| &b == bytes) && is_lower(text),
            Etag::Other(other) => **other == *text,
        }
    }
}

fn is_lower(hex: &str) -> bool {
    !hex.bytes().any(|b| b.is_ascii_uppercase())
}

impl From<&str> for Etag {
    fn from(text: &str) -> Self {
        match decode::<16>(text) {
            Some(bytes) if is_lower(text) => Etag::Md5(bytes),
            _ => Etag::Other(text.into()),
        }
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Etag::Md5(bytes) => write_hex(bytes, f),
            Etag::Other(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Etag({self})")
    }
}

impl serde::Serialize for Etag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Etag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Etag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ETag")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Etag, E> {
                Ok(Etag::from(value))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

fn decode<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let hex = hex.as_bytes();
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
    }
    Some(out)
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Serde as hex text, read without an intermediate `String` where the input allows it.
macro_rules! hex_serde {
    ($type:ty, $what:literal) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $type;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<$type, E> {
                        <$type>::parse(value).ok_or_else(|| {
                            E::invalid_value(serde::de::Unexpected::Str(value), &self)
                        })
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

hex_serde!(Digest, "a blake3 digest as 64 hex digits");
hex_serde!(Fingerprint, "a headers fingerprint as 16 hex digits");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_matches_blake3() {
        let digest = Digest::of(b"hello");
        assert_eq!(digest.to_string(), blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(Digest::parse(&digest.to_string()), Some(digest));
        assert_eq!(
            Digest::parse(&digest.to_string().to_uppercase()),
            Some(digest)
        );
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{digest}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        let print = Fingerprint::of(b"headers");
        assert_eq!(
            print.to_string(),
            blake3::hash(b"headers").to_hex()[..16].to_string()
        );
    }

    #[test]
    fn etags_keep_their_exact_text() {
        for text in [
            "d41d8cd98f00b204e9800998ecf8427e",
            "D41D8CD98F00B204E9800998ECF8427E",
            "d41d8cd98f00b204e9800998ecf8427e-3",
            "W/abc",
            "",
        ] {
            let etag = Etag::from(text);
            assert_eq!(etag.to_string(), text);
            assert!(etag.is(text), "{text:?}");
            let json = serde_json::to_string(&etag).unwrap();
            assert_eq!(serde_json::from_str::<Etag>(&json).unwrap(), etag);
        }
        let md5 = Etag::from("d41d8cd98f00b204e9800998ecf8427e");
        assert!(matches!(md5, Etag::Md5(_)));
        assert!(!md5.is("D41D8CD98F00B204E9800998ECF8427E"));
        assert!(!md5.is("d41d8cd98f00b204e9800998ecf8427f"));
    }

    #[test]
    fn anything_but_hex_of_the_length_is_refused() {
        for bad in [
            "",
            "abc",
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
            "+0",
        ] {
            assert_eq!(Digest::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Fingerprint::parse(&"é".repeat(8)), None);
        let error = serde_json::from_str::<Digest>("\"nope\"").unwrap_err();
        assert!(error.to_string().contains("64 hex digits"), "{error}");
    }
}
