use super::*;

#[test]
fn udata_comment_has_libnftnl_layout() {
    // `nft --debug=netlink` shows `userdata = { \x00\x06hello\x00 }`.
    assert_eq!(udata_comment("hello"), b"\x00\x06hello\x00");
    assert_eq!(
        udata_comment_parse(b"\x05\x01x\x00\x06hello\x00").as_deref(),
        Some("hello")
    );
    let longest = "c".repeat(NFT_COMMENT_MAX_BYTES);
    assert_eq!(udata_comment(&longest).len(), NFT_USERDATA_MAX);
    assert_eq!(
        udata_comment_parse(&udata_comment(&longest)).as_deref(),
        Some(longest.as_str())
    );
}

#[test]
fn acks_carry_the_extended_message() {
    // An NLMSG_ERROR with a capped original header and NLMSGERR_ATTR_MSG.
    let mut payload = (-(Errno::EEXIST as i32)).to_ne_bytes().to_vec();
    payload.extend_from_slice(&[0; NLMSG_HDRLEN]);
    put_str(&mut payload, NLMSGERR_ATTR_MSG, "Chain type mismatch");
    let m = Message {
        kind: NLMSG_ERROR,
        flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
        seq: 7,
        payload: &payload,
    };
    let ack = parse_ack(&m).expect("ack");
    let err = kernel_error("create base chain postrouting", ack.code, ack.message);
    assert_eq!(err.errno(), Some(Errno::EEXIST));
    assert_eq!(
        err.to_string(),
        "nftables: cannot create base chain postrouting: EEXIST: File exists (Chain type mismatch)"
    );
}

/// Every expression this crate writes reads back as what it wrote.
#[test]
fn rules_round_trip_through_the_wire_format() {
    let exprs = [
        Expr::Meta(NFT_META_IIFNAME),
        Expr::Cmp(NFT_CMP_EQ, b"veth0\0\0\0\0\0\0\0\0\0\0\0".to_vec()),
        Expr::Payload {
            base: NFT_PAYLOAD_LL_HEADER,
            offset: 6,
            len: 6,
        },
        Expr::Bitwise(vec![0xff, 0xf0]),
        Expr::Verdict(NFT_JUMP, Some("cni-br-iface-x")),
        Expr::Verdict(NFT_RETURN, None),
        Expr::Masquerade,
    ];
    let mut msg = vec![NFPROTO_BRIDGE, 0, 0, 0];
    put_str(&mut msg, NFTA_RULE_TABLE, "nat");
    put_str(&mut msg, NFTA_RULE_CHAIN, "PREROUTING");
    put_attr(&mut msg, NFTA_RULE_HANDLE, &7u64.to_be_bytes());
    nest(&mut msg, NFTA_RULE_EXPRESSIONS, |b| {
        for expr in &exprs {
            expr.encode(b);
        }
    });
    put_attr(
        &mut msg,
        NFTA_RULE_USERDATA,
        &udata_comment("macspoofchk-x"),
    );
    let rule = NftRule::parse(&msg).expect("parse");
    assert_eq!(
        (rule.table.as_str(), rule.chain.as_str(), rule.handle),
        ("nat", "PREROUTING", 7)
    );
    assert_eq!(rule.comment, "macspoofchk-x");
    assert_eq!(
        rule.exprs,
        [
            DecodedExpr::Meta(NFT_META_IIFNAME),
            DecodedExpr::Cmp(NFT_CMP_EQ, b"veth0\0\0\0\0\0\0\0\0\0\0\0".to_vec()),
            DecodedExpr::Payload {
                base: NFT_PAYLOAD_LL_HEADER,
                offset: 6,
                len: 6
            },
            DecodedExpr::Bitwise(vec![0xff, 0xf0]),
            DecodedExpr::Verdict(NFT_JUMP, Some("cni-br-iface-x".into())),
            DecodedExpr::Verdict(NFT_RETURN, None),
            DecodedExpr::Other("masq".into()),
        ]
    );
    // The last jump or goto names the target.
    assert_eq!(rule.target_chain(), Some("cni-br-iface-x"));
}

#[test]
fn batches_frame_every_message_and_count_sequence_numbers() {
    let mut batch = Batch::new(NFPROTO_BRIDGE, 41);
    batch.add_table("nat", None);
    batch.flush_chain("nat", "c");
    assert!(!batch.deletes);
    batch.delete_chain("nat", "c");
    assert!(batch.deletes);
    let (bytes, ops, begin, next) = batch.finish();
    let msgs = messages(&bytes).expect("frames");
    // begin, three messages, end; consecutive sequence numbers from 42.
    assert_eq!(msgs.len(), 5);
    assert_eq!(
        msgs.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [42, 43, 44, 45, 46]
    );
    assert_eq!((begin, next), (42, 47));
    assert_eq!(
        ops.iter()
            .map(|(s, op)| (*s, op.as_str()))
            .collect::<Vec<_>>(),
        [
            (43, "create table nat"),
            (44, "flush chain c"),
            (45, "delete chain c")
        ]
    );
    assert_eq!(msgs[0].kind, NFNL_MSG_BATCH_BEGIN);
    assert_eq!(msgs[4].kind, NFNL_MSG_BATCH_END);
    // The family travels in every nfgenmsg but the markers'.
    assert!(msgs[1..4].iter().all(|m| m.payload[0] == NFPROTO_BRIDGE));
    assert_eq!(msgs[3].kind, nft_type(NFT_MSG_DELCHAIN));
}
