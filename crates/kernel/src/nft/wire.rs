//! Netlink framing: messages, attributes, acks.

use netlink_packet_core::{
    NetlinkBuffer, NlaBuffer, NlasIterator, NLA_ALIGNTO, NLA_HEADER_SIZE, NLA_TYPE_MASK,
};

use super::*;

/// Appends an nlmsghdr and an nfgenmsg; returns where the message starts.
pub(crate) fn begin_message(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
) -> usize {
    let start = buf.len();
    buf.resize(start + NLMSG_HDRLEN, 0);
    let mut header = NetlinkBuffer::new(&mut buf[start..]);
    header.set_message_type(kind);
    header.set_flags(flags);
    header.set_sequence_number(seq);
    // The length is set by end_message; the port id (0) the kernel fills in.
    buf.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, version 0, res_id
    start
}

pub(crate) fn end_message(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    NetlinkBuffer::new(&mut buf[start..]).set_length(len);
}

pub(crate) fn align4(n: usize) -> usize {
    (n + NLA_ALIGNTO - 1) & !(NLA_ALIGNTO - 1)
}

/// Appends an attribute header of `kind` for `len` bytes of value; returns
/// where it starts.
fn begin_attr(buf: &mut Vec<u8>, kind: u16, len: usize) -> usize {
    let start = buf.len();
    buf.resize(start + NLA_HEADER_SIZE, 0);
    let mut nla = NlaBuffer::new(&mut buf[start..]);
    nla.set_kind(kind);
    // Every attribute here is far below 64 KiB (names, addresses, comments).
    nla.set_length((NLA_HEADER_SIZE + len) as u16);
    start
}

pub(crate) fn put_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    begin_attr(buf, kind, data.len());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

/// Strings go NUL-terminated, as the kernel's NLA_STRING policy expects from
/// libnftnl.
pub(crate) fn put_str(buf: &mut Vec<u8>, kind: u16, s: &str) {
    begin_attr(buf, kind, s.len() + 1);
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    buf.resize(align4(buf.len()), 0);
}

/// nf_tables integers are big-endian on the wire.
pub(crate) fn put_be32(buf: &mut Vec<u8>, kind: u16, value: u32) {
    put_attr(buf, kind, &value.to_be_bytes());
}

pub(crate) fn nest(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = begin_attr(buf, kind, 0);
    NlaBuffer::new(&mut buf[start..]).set_nested_flag();
    fill(buf);
    let len = (buf.len() - start) as u16;
    NlaBuffer::new(&mut buf[start..]).set_length(len);
}

/// The attributes of a message payload or a nest: (type without flags, value).
pub(crate) fn attributes(data: &[u8]) -> Result<Vec<(u16, &[u8])>, NetError> {
    NlasIterator::new(data)
        .map(|nla| {
            let nla =
                nla.map_err(|e| NetError::NftProtocol(format!("malformed attribute: {e}")))?;
            let kind = nla.kind() & NLA_TYPE_MASK;
            let len = usize::from(nla.length());
            Ok((kind, &nla.into_inner()[NLA_HEADER_SIZE..len]))
        })
        .collect()
}

pub(crate) fn cstr(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

pub(crate) fn read_i32(data: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

pub(crate) struct Message<'a> {
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

pub(crate) fn messages(mut data: &[u8]) -> Result<Vec<Message<'_>>, NetError> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let message = NetlinkBuffer::new_checked(data).map_err(|e| {
            NetError::NftProtocol(format!(
                "malformed message in a {}-byte datagram: {e}",
                data.len()
            ))
        })?;
        let len = message.length() as usize;
        out.push(Message {
            kind: message.message_type(),
            flags: message.flags(),
            seq: message.sequence_number(),
            payload: &data[NLMSG_HDRLEN..len],
        });
        data = &data[align4(len).min(data.len())..];
    }
    Ok(out)
}

/// An `NLMSG_ERROR`: 0 is an ack, otherwise a negative errno.
pub(crate) struct Ack {
    pub(crate) code: i32,
    pub(crate) message: Option<String>,
}

pub(crate) fn parse_ack(m: &Message<'_>) -> Result<Ack, NetError> {
    let code =
        read_i32(m.payload).ok_or_else(|| NetError::NftProtocol("truncated NLMSG_ERROR".into()))?;
    let mut message = None;
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // After the errno comes the original header, plus its payload unless
        // the kernel capped it, then the extended-ack attributes.
        let original = if m.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            read_i32(m.payload.get(4..).unwrap_or_default()).unwrap_or(0) as usize
        };
        if let Some(tlvs) = m.payload.get(4 + align4(original)..) {
            message = attributes(tlvs)?
                .into_iter()
                .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
                .map(|(_, v)| cstr(v));
        }
    }
    Ok(Ack { code, message })
}
