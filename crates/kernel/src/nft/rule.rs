//! Reading rules back from a dump: handles, comments and expressions.

use super::*;

/// A rule as dumped by the kernel.
#[derive(Debug, Clone)]
pub(crate) struct NftRule {
    pub(crate) table: String,
    pub(crate) chain: String,
    pub(crate) handle: u64,
    /// The comment, empty when there is none.
    pub(crate) comment: String,
    pub(crate) exprs: Vec<DecodedExpr>,
}

/// Enough of a dumped expression to recognise the rules this crate writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodedExpr {
    Meta(u32),
    Cmp(u32, Vec<u8>),
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    Bitwise(Vec<u8>),
    /// A verdict (`immediate` to the verdict register) and its target chain.
    Verdict(i32, Option<String>),
    Other(String),
}

impl NftRule {
    /// Parses a NEWRULE message payload (nfgenmsg and attributes).
    pub(crate) fn parse(payload: &[u8]) -> Result<Self, NetError> {
        let attrs = payload
            .get(4..)
            .ok_or_else(|| NetError::NftProtocol("rule message without nfgenmsg".into()))?;
        let mut rule = NftRule {
            table: String::new(),
            chain: String::new(),
            handle: 0,
            comment: String::new(),
            exprs: Vec::new(),
        };
        for (kind, value) in attributes(attrs)? {
            match kind {
                NFTA_RULE_TABLE => rule.table = cstr(value),
                NFTA_RULE_CHAIN => rule.chain = cstr(value),
                NFTA_RULE_HANDLE => {
                    let bytes: [u8; 8] = value
                        .try_into()
                        .map_err(|_| NetError::NftProtocol("rule handle is not 8 bytes".into()))?;
                    rule.handle = u64::from_be_bytes(bytes);
                }
                NFTA_RULE_USERDATA => rule.comment = udata_comment_parse(value).unwrap_or_default(),
                NFTA_RULE_EXPRESSIONS => {
                    for (_, elem) in attributes(value)? {
                        rule.exprs.push(decode_expr(elem)?);
                    }
                }
                _ => {}
            }
        }
        Ok(rule)
    }

    /// The chain this rule jumps or goes to, if it ends in such a verdict.
    pub(crate) fn target_chain(&self) -> Option<&str> {
        self.exprs.iter().rev().find_map(|e| match e {
            DecodedExpr::Verdict(NFT_JUMP | NFT_GOTO, Some(chain)) => Some(chain.as_str()),
            _ => None,
        })
    }
}

pub(crate) fn decode_expr(elem: &[u8]) -> Result<DecodedExpr, NetError> {
    let mut name = String::new();
    let mut data: &[u8] = &[];
    for (kind, value) in attributes(elem)? {
        match kind {
            NFTA_EXPR_NAME => name = cstr(value),
            NFTA_EXPR_DATA => data = value,
            _ => {}
        }
    }
    let attrs = attributes(data)?;
    let be32 = |kind: u16| {
        attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, v)| <[u8; 4]>::try_from(*v).ok())
            .map(u32::from_be_bytes)
    };
    let nested = |kind: u16, inner: u16| -> Result<Option<&[u8]>, NetError> {
        let Some((_, outer)) = attrs.iter().find(|(k, _)| *k == kind) else {
            return Ok(None);
        };
        Ok(attributes(outer)?
            .into_iter()
            .find(|(k, _)| *k == inner)
            .map(|(_, v)| v))
    };
    let value = |kind: u16| -> Result<Vec<u8>, NetError> {
        Ok(nested(kind, NFTA_DATA_VALUE)?
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    };
    Ok(match name.as_str() {
        "meta" => DecodedExpr::Meta(be32(NFTA_META_KEY).unwrap_or(u32::MAX)),
        "cmp" => DecodedExpr::Cmp(be32(NFTA_CMP_OP).unwrap_or(u32::MAX), value(NFTA_CMP_DATA)?),
        "payload" => DecodedExpr::Payload {
            base: be32(NFTA_PAYLOAD_BASE).unwrap_or(u32::MAX),
            offset: be32(NFTA_PAYLOAD_OFFSET).unwrap_or(u32::MAX),
            len: be32(NFTA_PAYLOAD_LEN).unwrap_or(0),
        },
        "bitwise" => DecodedExpr::Bitwise(value(NFTA_BITWISE_MASK)?),
        "immediate" if be32(NFTA_IMMEDIATE_DREG) == Some(NFT_REG_VERDICT) => {
            match nested(NFTA_IMMEDIATE_DATA, NFTA_DATA_VERDICT)? {
                Some(verdict) => {
                    let (mut code, mut chain) = (None, None);
                    for (kind, v) in attributes(verdict)? {
                        match kind {
                            NFTA_VERDICT_CODE => {
                                code = <[u8; 4]>::try_from(v).ok().map(i32::from_be_bytes)
                            }
                            NFTA_VERDICT_CHAIN => chain = Some(cstr(v)),
                            _ => {}
                        }
                    }
                    match code {
                        Some(code) => DecodedExpr::Verdict(code, chain),
                        None => DecodedExpr::Other(name),
                    }
                }
                None => DecodedExpr::Other(name),
            }
        }
        _ => DecodedExpr::Other(name),
    })
}
