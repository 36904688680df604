use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use tandem_common::vpcsim::{
    AssignIpsRequest, CreateEniRequest, DescribeEnisRequest, UnassignIpsRequest,
};

use super::*;
use crate::lab::names::LabNames;

fn state() -> CloudState {
    let limits = crate::lab::InstanceLimits {
        max_enis: 4,
        max_ips_per_eni: 10,
    };
    let topo = Topology::standard(&LabNames::new("t", Path::new("/tmp")), limits);
    let mut s = CloudState::with_seed(&topo, 7);
    for i in &topo.instances {
        let p = &i.primary_eni;
        s.create_primary(&i.id, &p.vswitch_id, p.primary_ip)
            .unwrap();
    }
    s
}

fn create(s: &mut CloudState, vsw: &str, token: Option<&str>) -> Result<Eni, StateError> {
    s.create_eni(&CreateEniRequest {
        vswitch_id: vsw.to_owned(),
        tags: BTreeMap::from([("tenant".to_owned(), vsw.to_owned())]),
        client_token: token.map(str::to_owned),
    })
}

fn assign(s: &mut CloudState, eni: &str, count: u32) -> Result<Vec<Ipv4Addr>, StateError> {
    s.assign(&AssignIpsRequest {
        eni_id: eni.to_owned(),
        count,
    })
    .map(|(_, ips)| ips)
}

#[test]
fn allocates_lowest_free_skipping_gateway_and_reserved() {
    let mut s = state();
    let a = create(&mut s, "vsw-acme", None).unwrap();
    assert_eq!(a.primary_ip, Ipv4Addr::new(10, 1, 0, 2));
    assert!(a.id.starts_with("eni-") && a.id.len() == 12, "{}", a.id);
    assert!(a.mac.starts_with("02:") && a.mac.len() == 17, "{}", a.mac);
    let ips = assign(&mut s, &a.id, 3).unwrap();
    assert_eq!(ips[0], Ipv4Addr::new(10, 1, 0, 3));
    assert_eq!(ips[2], Ipv4Addr::new(10, 1, 0, 5));
    // The control vSwitch reserves the node addresses 10.10.0.11/12.
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(create(&mut s, "vsw-ctl", None).unwrap().primary_ip);
    }
    assert!(!seen.contains(&Ipv4Addr::new(10, 10, 0, 11)));
    assert!(!seen.contains(&Ipv4Addr::new(10, 10, 0, 1)));
    assert_eq!(seen[9], Ipv4Addr::new(10, 10, 0, 13));
    // Freed addresses are reused, lowest first.
    s.unassign(&UnassignIpsRequest {
        eni_id: a.id.clone(),
        ips: vec![Ipv4Addr::new(10, 1, 0, 4)],
    })
    .unwrap();
    assert_eq!(
        assign(&mut s, &a.id, 1).unwrap(),
        [Ipv4Addr::new(10, 1, 0, 4)]
    );
}

#[test]
fn subnet_exhaustion_is_all_or_nothing() {
    let mut s = state();
    // 10.1.0.0/24: 253 usable (minus network, gateway, broadcast).
    let mut enis = Vec::new();
    for _ in 0..253 {
        enis.push(create(&mut s, "vsw-acme", None).unwrap());
    }
    let err = create(&mut s, "vsw-acme", None).unwrap_err();
    assert_eq!(err.code(), codes::SUBNET_FULL);
    s.delete(&enis[0].id).unwrap();
    let err = assign(&mut s, &enis[1].id, 2).unwrap_err();
    assert_eq!(err.code(), codes::SUBNET_FULL);
    assert!(s.eni(&enis[1].id).unwrap().secondary_ips.is_empty());
    assert_eq!(
        assign(&mut s, &enis[1].id, 1).unwrap(),
        [enis[0].primary_ip]
    );
}

#[test]
fn limits_count_the_primary() {
    let mut s = state();
    let a = create(&mut s, "vsw-acme", None).unwrap();
    let a = s.attach(&a.id, "i-n1").unwrap();
    assert_eq!(a.attachment.as_ref().unwrap().device_index, 1);
    assert_eq!(assign(&mut s, &a.id, 9).unwrap().len(), 9);
    let err = assign(&mut s, &a.id, 1).unwrap_err();
    assert_eq!((err.code(), err.status()), (codes::IP_LIMIT, 400));
    // eth0 + 3 more = maxEnis 4.
    for want in [2, 3] {
        let e = create(&mut s, "vsw-globex", None).unwrap();
        let e = s.attach(&e.id, "i-n1").unwrap();
        assert_eq!(e.attachment.unwrap().device_index, want);
    }
    let e = create(&mut s, "vsw-globex", None).unwrap();
    assert_eq!(
        s.attach(&e.id, "i-n1").unwrap_err().code(),
        codes::ENI_LIMIT
    );
    // Detaching index 1 frees it for the next attach.
    s.detach(&a.id).unwrap();
    assert_eq!(
        s.attach(&e.id, "i-n1")
            .unwrap()
            .attachment
            .unwrap()
            .device_index,
        1
    );
}

#[test]
fn attach_detach_delete_states() {
    let mut s = state();
    let a = create(&mut s, "vsw-acme", None).unwrap();
    assert_eq!(s.detach(&a.id).unwrap_err().code(), codes::INCORRECT_STATE);
    s.attach(&a.id, "i-n2").unwrap();
    assert_eq!(s.attach(&a.id, "i-n1").unwrap_err().code(), codes::IN_USE);
    assert_eq!(s.delete(&a.id).unwrap_err().code(), codes::IN_USE);
    assert_eq!(s.attach("eni-nope", "i-n1").unwrap_err().status(), 404);
    let e = create(&mut s, "vsw-acme", None).unwrap();
    assert_eq!(
        s.attach(&e.id, "i-nope").unwrap_err().code(),
        codes::INSTANCE_NOT_FOUND
    );
    let before = s.detach(&a.id).unwrap();
    assert_eq!(before.attachment.unwrap().instance_id, "i-n2");
    s.delete(&a.id).unwrap();
    assert_eq!(s.delete(&a.id).unwrap_err().code(), codes::ENI_NOT_FOUND);
    let primary = s
        .describe(&DescribeEnisRequest {
            instance_id: Some("i-n1".to_owned()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        s.detach(&primary[0].id).unwrap_err().code(),
        codes::INCORRECT_STATE
    );
    assert_eq!(create(&mut s, "vsw-nope", None).unwrap_err().status(), 404);
    assert_eq!(
        assign(&mut s, &e.id, 0).unwrap_err().code(),
        codes::BAD_REQUEST
    );
}

#[test]
fn create_is_idempotent_by_client_token() {
    let mut s = state();
    let a = create(&mut s, "vsw-acme", Some("tok-1")).unwrap();
    let b = create(&mut s, "vsw-acme", Some("tok-1")).unwrap();
    assert_eq!(a, b);
    let c = create(&mut s, "vsw-acme", Some("tok-2")).unwrap();
    assert_ne!(a.id, c.id);
    assert_eq!(
        create(&mut s, "vsw-globex", Some("tok-1"))
            .unwrap_err()
            .code(),
        codes::BAD_REQUEST
    );
}

#[test]
fn describe_filters() {
    let mut s = state();
    let a = create(&mut s, "vsw-acme", None).unwrap();
    let g = create(&mut s, "vsw-globex", None).unwrap();
    s.attach(&g.id, "i-n1").unwrap();
    let all = s.describe(&DescribeEnisRequest::default()).unwrap();
    assert_eq!(all.len(), 4);
    let on_n1 = s
        .describe(&DescribeEnisRequest {
            instance_id: Some("i-n1".to_owned()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(on_n1.len(), 2);
    let primaries = s
        .describe(&DescribeEnisRequest {
            tags: BTreeMap::from([(PRIMARY_TAG.to_owned(), "true".to_owned())]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(primaries.len(), 2);
    let by_id_and_tag = s
        .describe(&DescribeEnisRequest {
            eni_ids: vec![a.id.clone(), g.id.clone()],
            tags: BTreeMap::from([("tenant".to_owned(), "vsw-acme".to_owned())]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_id_and_tag, vec![a]);
    let err = s
        .describe(&DescribeEnisRequest {
            eni_ids: vec!["eni-00000000".to_owned()],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), codes::ENI_NOT_FOUND);
}
