//! The intent kinds, declared once.
//!
//! [`IntentKind`] is the one list of what a plan may contain: the policy grants
//! kinds by it, the validator and the applier match [`Intent`](crate::Intent)
//! exhaustively (so a new variant is a compile error until each states its
//! rule and its kernel operations), and the fuzz encoding uses its explicit
//! discriminants, which never change once given (the committed corpus
//! encodes kinds by them). To add a kind: add its `Intent` variant, a line
//! below with the next free discriminant, and follow the compiler.

use std::fmt;
use std::str::FromStr;

macro_rules! intent_kinds {
    ($($(#[$doc:meta])* $variant:ident = $disc:literal => $name:literal,)*) => {
        /// What kind of change an intent asks for, as the WIT contract, the
        /// policy file and the audit trail spell it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum IntentKind {
            $($(#[$doc])* $variant = $disc,)*
        }

        impl IntentKind {
            /// Every kind, in the order of their discriminants.
            pub const ALL: &'static [IntentKind] = &[$(IntentKind::$variant,)*];

            /// The kind's name (`ensure-bridge`, ...).
            pub const fn name(self) -> &'static str {
                match self {
                    $(IntentKind::$variant => $name,)*
                }
            }
        }
    };
}

intent_kinds! {
    /// A host bridge, created or adopted.
    EnsureBridge = 0 => "ensure-bridge",
    /// A veth pair from the container to the host.
    CreateVeth = 1 => "create-veth",
    /// A link of this plan (or the container's interface) deleted.
    DeleteLink = 2 => "delete-link",
    SetLinkUp = 3 => "set-link-up",
    SetLinkDown = 4 => "set-link-down",
    SetMtu = 5 => "set-mtu",
    SetMac = 6 => "set-mac",
    /// A host veth end enslaved to a bridge (or a granted uplink).
    AttachPort = 7 => "attach-port",
    FlushPortVlans = 8 => "flush-port-vlans",
    AddPortVlan = 9 => "add-port-vlan",
    AddAddress = 10 => "add-address",
    DeleteAddress = 11 => "delete-address",
    AddRoute = 12 => "add-route",
    /// A sysctl from the allow-list.
    SetSysctl = 13 => "set-sysctl",
    /// An `ipMasq` rule for one attachment.
    Masquerade = 14 => "masquerade",
    Unmasquerade = 15 => "unmasquerade",
    /// The masquerade rules of a network whose attachments are gone.
    GcMasquerade = 16 => "gc-masquerade",
    WaitOperUp = 17 => "wait-oper-up",
    WaitAddressesSettled = 18 => "wait-addresses-settled",
    /// `macspoofchk` rules for one attachment.
    SpoofCheck = 19 => "spoof-check",
    UnspoofCheck = 20 => "unspoof-check",
    /// A veth pair with both ends on the host.
    EnsureHostVeth = 21 => "ensure-host-veth",
}

impl fmt::Display for IntentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A name that is no intent kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = IntentKind::ALL.iter().map(|k| k.name()).collect();
        write!(
            f,
            "unknown intent kind {:?} (allowed: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl FromStr for IntentKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IntentKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

impl serde::Serialize for IntentKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for IntentKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_are_dense_and_stable() {
        for (i, kind) in IntentKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind}");
        }
        // The fuzz corpus and policy files depend on these never moving.
        assert_eq!(IntentKind::EnsureBridge as u8, 0);
        assert_eq!(IntentKind::UnspoofCheck as u8, 20);
        assert_eq!(IntentKind::EnsureHostVeth as u8, 21);
    }

    #[test]
    fn names_round_trip() {
        for kind in IntentKind::ALL {
            assert_eq!(kind.name().parse::<IntentKind>(), Ok(*kind));
        }
        let e = "frobnicate".parse::<IntentKind>().expect_err("unknown");
        assert!(e.to_string().contains("unknown intent kind \"frobnicate\""));
        assert!(e.to_string().contains("ensure-host-veth"));
    }
}
