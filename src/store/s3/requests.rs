//! What `sync`'s aws-cli flags add to S3 requests beyond an object's headers: a customer key
//! (SSE-C) for this store's objects and for a copy's source, ACL grants, the flexible checksum
//! stored with uploads and copies, and checksum validation of downloads.
//!
//! These are settings of a run, not properties of an object, so they live beside [`Headers`]
//! (which the deploy manifest fingerprints) rather than in them; and a customer key is a secret
//! that no manifest, report or log may hold.
//!
//! [`Headers`]: crate::headers::Headers

use base64::Engine;
use md5::Digest as _;

/// A customer-provided key (`--sse-c-key`), ready for the three headers S3 wants: the
/// algorithm, the key and the key's MD5, both base64 as S3 expects (aws-cli takes the raw key
/// and encodes it, as here). `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    pub(super) algorithm: String,
    pub(super) key: String,
    pub(super) md5: String,
}

impl CustomerKey {
    /// `algorithm` (`AES256`) with the raw key bytes as given.
    pub fn new(algorithm: &str, raw: &[u8]) -> CustomerKey {
        let engine = base64::engine::general_purpose::STANDARD;
        CustomerKey {
            algorithm: algorithm.to_string(),
            key: engine.encode(raw),
            md5: engine.encode(md5::Md5::digest(raw)),
        }
    }
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// `--grants`: the grantee list of each permission, verbatim (`uri=…`, `id=…`,
/// `emailaddress=…`, comma-separated for several), as the `x-amz-grant-*` headers carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub read: Option<String>,
    pub read_acp: Option<String>,
    pub write_acp: Option<String>,
    pub full_control: Option<String>,
}

impl Grants {
    /// aws-cli's `--grants read=uri=… full=id=…`, each `PERMISSION=GRANTEE`; a later grant of
    /// the same permission replaces an earlier one, as in aws-cli. The errors are aws-cli's.
    pub fn parse<'a>(grants: impl IntoIterator<Item = &'a str>) -> Result<Grants, String> {
        let mut out = Grants::default();
        for grant in grants {
            let Some((permission, grantee)) = grant.split_once('=') else {
                return Err("grants should be of the form permission=principal".into());
            };
            let slot = match permission {
                "read" => &mut out.read,
                "full" => &mut out.full_control,
                "readacl" => &mut out.read_acp,
                "writeacl" => &mut out.write_acp,
                _ => return Err("permission must be one of: read|readacl|writeacl|full".into()),
            };
            *slot = Some(grantee.to_string());
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        *self == Grants::default()
    }
}

/// A flexible checksum algorithm S3 stores with an object (`--checksum-algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
    Sha512,
}

impl ChecksumKind {
    /// aws-cli's names. `None` for names hoist does not compute (aws-cli's XXHASH64, XXHASH3
    /// and XXHASH128 need its optional CRT dependency).
    pub fn parse(name: &str) -> Option<ChecksumKind> {
        Some(match name {
            "CRC32" => ChecksumKind::Crc32,
            "CRC32C" => ChecksumKind::Crc32c,
            "CRC64NVME" => ChecksumKind::Crc64Nvme,
            "SHA1" => ChecksumKind::Sha1,
            "SHA256" => ChecksumKind::Sha256,
            "SHA512" => ChecksumKind::Sha512,
            _ => return None,
        })
    }

    pub(super) fn sdk(self) -> aws_sdk_s3::types::ChecksumAlgorithm {
        use aws_sdk_s3::types::ChecksumAlgorithm as A;
        match self {
            ChecksumKind::Crc32 => A::Crc32,
            ChecksumKind::Crc32c => A::Crc32C,
            ChecksumKind::Crc64Nvme => A::Crc64Nvme,
            ChecksumKind::Sha1 => A::Sha1,
            ChecksumKind::Sha256 => A::Sha256,
            ChecksumKind::Sha512 => A::Sha512,
        }
    }

    pub(super) fn summer(self) -> Summer {
        use aws_smithy_checksums::ChecksumAlgorithm as A;
        let smithy = |algorithm: A| Summer::Smithy(algorithm.into_impl());
        match self {
            ChecksumKind::Crc32 => Summer::Crc32(crc32fast::Hasher::new()),
            ChecksumKind::Crc32c => smithy(A::Crc32c),
            ChecksumKind::Crc64Nvme => smithy(A::Crc64Nvme),
            ChecksumKind::Sha1 => smithy(A::Sha1),
            ChecksumKind::Sha256 => smithy(A::Sha256),
            ChecksumKind::Sha512 => Summer::Sha512(Box::default()),
        }
    }

    /// The base64 checksum of `bytes`.
    pub(super) fn of(self, bytes: &[u8]) -> String {
        let mut summer = self.summer();
        summer.update(bytes);
        summer.finish()
    }
}

/// A running checksum whose result is the base64 text S3's headers carry.
pub(super) enum Summer {
    Crc32(crc32fast::Hasher),
    Smithy(Box<dyn aws_smithy_checksums::http::HttpChecksum>),
    Sha512(Box<sha2::Sha512>),
    Md5(md5::Md5),
}

impl Summer {
    pub(super) fn update(&mut self, bytes: &[u8]) {
        match self {
            Summer::Crc32(h) => h.update(bytes),
            Summer::Smithy(h) => h.update(bytes),
            Summer::Sha512(h) => sha2::Digest::update(h.as_mut(), bytes),
            Summer::Md5(h) => h.update(bytes),
        }
    }

    pub(super) fn finish(self) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        match self {
            Summer::Crc32(h) => engine.encode(h.finalize().to_be_bytes()),
            Summer::Smithy(h) => engine.encode(h.finalize()),
            Summer::Sha512(h) => engine.encode(sha2::Digest::finalize(*h)),
            Summer::Md5(h) => engine.encode(h.finalize()),
        }
    }
}

/// Sets `$value` as the checksum of kind `$kind` on a request or part builder (the SDK's
/// builders share these setters without sharing a trait).
macro_rules! set_checksum {
    ($request:expr, $kind:expr, $value:expr) => {{
        use $crate::store::s3::requests::ChecksumKind as K;
        let value: String = $value;
        match $kind {
            K::Crc32 => $request.checksum_crc32(value),
            K::Crc32c => $request.checksum_crc32_c(value),
            K::Crc64Nvme => $request.checksum_crc64_nvme(value),
            K::Sha1 => $request.checksum_sha1(value),
            K::Sha256 => $request.checksum_sha256(value),
            K::Sha512 => $request.checksum_sha512(value),
        }
    }};
}
pub(super) use set_checksum;

/// Adds the customer-key headers of `$key` (an `Option<&CustomerKey>`) to a request.
macro_rules! with_customer_key {
    ($request:expr, $key:expr) => {{
        let request = $request;
        match $key {
            Some(key) => request
                .sse_customer_algorithm(key.algorithm.clone())
                .sse_customer_key(key.key.clone())
                .sse_customer_key_md5(key.md5.clone()),
            None => request,
        }
    }};
}
pub(super) use with_customer_key;

/// Adds the copy-source customer-key headers of `$key` to a CopyObject or UploadPartCopy.
macro_rules! with_copy_source_key {
    ($request:expr, $key:expr) => {{
        let request = $request;
        match $key {
            Some(key) => request
                .copy_source_sse_customer_algorithm(key.algorithm.clone())
                .copy_source_sse_customer_key(key.key.clone())
                .copy_source_sse_customer_key_md5(key.md5.clone()),
            None => request,
        }
    }};
}
pub(super) use with_copy_source_key;

/// Adds the `x-amz-grant-*` headers of `$grants` to a PutObject, CreateMultipartUpload or
/// CopyObject.
macro_rules! with_grants {
    ($request:expr, $grants:expr) => {{
        let grants: &$crate::store::s3::requests::Grants = $grants;
        $request
            .set_grant_read(grants.read.clone())
            .set_grant_read_acp(grants.read_acp.clone())
            .set_grant_write_acp(grants.write_acp.clone())
            .set_grant_full_control(grants.full_control.clone())
    }};
}
pub(super) use with_grants;

/// The request settings of one store (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// The customer key of this store's objects: sent on every PUT, GET, HEAD and copy that
    /// writes or reads one (`--sse-c`; for an S3→S3 copy's source store, `--sse-c-copy-source`).
    pub customer_key: Option<CustomerKey>,
    /// The customer key of a copy's source object, sent with copies into this store.
    pub copy_source_key: Option<CustomerKey>,
    pub grants: Grants,
    /// Stored with uploads and copies (`--checksum-algorithm`); `None`: hoist's default (CRC32,
    /// or Content-MD5 where checksums are sent only when required).
    pub checksum: Option<ChecksumKind>,
    /// `--checksum-mode ENABLED`: downloads ask for the stored checksum and check the bytes
    /// against it.
    pub checksum_mode: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_like_aws_cli() {
        let grants = Grants::parse([
            "read=uri=http://acs.amazonaws.com/groups/global/AllUsers",
            "full=id=abc,id=def",
        ])
        .unwrap();
        assert_eq!(
            grants.read.as_deref(),
            Some("uri=http://acs.amazonaws.com/groups/global/AllUsers")
        );
        assert_eq!(grants.full_control.as_deref(), Some("id=abc,id=def"));
        assert!(grants.read_acp.is_none() && grants.write_acp.is_none());
        assert_eq!(
            Grants::parse(["bogus"]).unwrap_err(),
            "grants should be of the form permission=principal"
        );
        assert_eq!(
            Grants::parse(["write=id=1"]).unwrap_err(),
            "permission must be one of: read|readacl|writeacl|full"
        );
    }

    #[test]
    fn customer_keys_are_encoded_and_never_shown() {
        let key = CustomerKey::new("AES256", b"0123456789abcdef0123456789abcdef");
        assert_eq!(key.key, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        assert_eq!(key.md5.len(), 24);
        let shown = format!("{key:?}");
        assert!(
            !shown.contains(&key.key) && !shown.contains("0123"),
            "{shown}"
        );
    }

    #[test]
    fn checksums_match_known_values() {
        // "hello\n", as S3 (and moto) report it.
        assert_eq!(ChecksumKind::Crc32.of(b"hello\n"), "NjowIA==");
        assert_eq!(
            ChecksumKind::Sha256.of(b"hello\n"),
            "WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM="
        );
        assert_eq!(ChecksumKind::Sha512.of(b"").len(), 88);
        // The algorithms' published check values, of "123456789".
        assert_eq!(ChecksumKind::Crc32c.of(b"123456789"), "4waSgw==");
        assert_eq!(ChecksumKind::Crc64Nvme.of(b"123456789"), "rosUhgp5mIg=");
        for name in ["CRC32C", "CRC64NVME", "SHA1"] {
            let kind = ChecksumKind::parse(name).unwrap();
            assert_ne!(kind.of(b"a"), kind.of(b"b"), "{name}");
        }
        assert_eq!(ChecksumKind::parse("XXHASH64"), None);
    }
}
