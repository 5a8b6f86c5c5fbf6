//! The one DNS client's interface for the proxy: the DNS front implements [`NameResolver`]
//! over its own upstream client and cache, and the binary hands it to the proxy, so names
//! the proxy connects to are resolved as the filtering resolver resolves them (the same
//! upstreams, UDP, TCP or TLS, and the same cache). It lives here, below both fronts, because
//! neither front may depend on the other.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("{0} does not exist")]
    NxDomain(String),
    #[error("{0} has no addresses")]
    NoAddresses(String),
    #[error("no upstream answered for {0}")]
    Unanswered(String),
}

/// A boxed future of a lookup's result.
pub type Addresses<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, ResolveError>> + Send + 'a>>;

/// Resolves host names to addresses (IPv4 first, then IPv6).
pub trait NameResolver: Send + Sync {
    /// The addresses of `host`, a normalised host name (no trailing dot).
    fn addresses<'a>(&'a self, host: &'a str) -> Addresses<'a>;
}
