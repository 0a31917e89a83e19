//! Host networking: network namespaces, bridges through netavark, address and port
//! allocation helpers. No HTTP and no store here: the engine decides, this module does.
//!
//! Why netavark (Debian's, driven through its JSON interface) and not native netlink +
//! nftables: it already does the bridge, veths, addresses, masquerade, the DNAT of published
//! ports (localhost included, via `route_localnet`) and per-network isolation, and it starts
//! aardvark-dns, which lives only while a container of a DNS network runs and exits with the
//! last one. berth keeps what must be consistent between processes — addresses and host
//! ports — in its store, under a write transaction, and hands netavark static addresses.

pub mod ipam;
pub mod keeper;
pub mod netavark;
pub mod netns;
pub mod ports;

pub use netavark::Netavark;
