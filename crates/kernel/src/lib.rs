//! The narrow door to the kernel: everything that changes or reads network
//! state goes through the [`Netlink`] trait, and the only code that switches
//! network namespaces is in [`netns`].
//!
//! - [`netns`]: namespace handles and [`run_in_netns`].
//! - [`netlink`]: domain types, [`NetError`] and the [`Netlink`] trait.
//! - [`rtnl`]: [`RtNetlink`], the real implementation over rtnetlink.
//! - [`fake`]: [`RecordingNetlink`], an in-memory recording model.
//! - [`masq`] and [`spoofcheck`]: the nftables rules of `ipMasq` and
//!   `macspoofchk`, over the hand-built nf_tables encoder in `nft`.

pub mod applier;
pub mod error;
pub mod fake;
pub mod masq;
pub mod netlink;
pub mod netns;
mod nft;
pub mod reaper;
pub mod rtnl;
pub mod spoofcheck;

pub use fake::{Op, RecordingNetlink};
pub use netlink::{
    validate_sysctl_path, BridgeVlanFlags, LinkFacts, NetError, Netlink, RouteFacts, RouteSpec,
};
pub use netns::{run_in_netns, NetnsHandle};
pub use nft::sockets_with_pending_work;
pub use rtnl::RtNetlink;
