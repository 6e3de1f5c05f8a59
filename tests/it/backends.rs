//! One handle over the S3-compatible servers, so a test body runs against each of them.
//!
//! `for_servers!(name, ...)` expands each named `fn name(server: &Server)` into a module with one
//! test per server (`deploy::headers_follow_rules::moto`, `...::rclone`), so a failure names both
//! the case and the server. A server that cannot be started fails the test with the install hint
//! (see `servers.rs`); only `HOIST_SKIP_SERVER_TESTS=1` skips.

use crate::servers::{Moto, Rclone};
use crate::util::Endpoint;

pub enum Server {
    Moto(Moto),
    Rclone(Rclone),
}

impl Server {
    pub fn moto() -> Option<Server> {
        Moto::start().map(Server::Moto)
    }

    pub fn rclone() -> Option<Server> {
        Rclone::start().map(Server::Rclone)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Server::Moto(_) => "moto",
            Server::Rclone(_) => "rclone",
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        match self {
            Server::Moto(moto) => Endpoint {
                url: moto.endpoint(),
                access_key: "testing".into(),
                secret_key: "testing".into(),
            },
            Server::Rclone(rclone) => Endpoint {
                url: rclone.endpoint(),
                access_key: rclone.access_key().into(),
                secret_key: rclone.secret_key().into(),
            },
        }
    }

    pub fn create_bucket(&self, name: &str) {
        match self {
            Server::Moto(moto) => moto.create_bucket(name),
            Server::Rclone(rclone) => rclone.create_bucket(name),
        }
    }

    /// The moto server, for tests that read its request recording.
    pub fn moto_server(&self) -> Option<&Moto> {
        match self {
            Server::Moto(moto) => Some(moto),
            Server::Rclone(_) => None,
        }
    }
}

macro_rules! for_servers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn moto() {
                    if let Some(server) = crate::backends::Server::moto() {
                        super::$name(&server);
                    }
                }

                #[test]
                fn rclone() {
                    if let Some(server) = crate::backends::Server::rclone() {
                        super::$name(&server);
                    }
                }
            }
        )*
    };
}
pub(crate) use for_servers;
