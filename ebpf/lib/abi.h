/* Every layout shared between the eBPF programs and the agent. Mirrored by
 * node-agent/src/policy/abi.rs (#[repr(C)] with size asserts): change both together.
 * Multi-byte fields marked "be" are in network byte order, all others in host order. */
#ifndef TANDEM_ABI_H
#define TANDEM_ABI_H

#include <linux/types.h>

/* Direction slot of a policy key. Ingress = towards the pod, egress = from the pod; ENV holds
 * the tenant environment's egress rules, which must allow a new egress flow as well as the
 * security groups. */
#define TANDEM_DIR_INGRESS 0
#define TANDEM_DIR_EGRESS 1
#define TANDEM_DIR_ENV 2

/* Normalised protocol slot of a policy key: every protocol other than these is 0, port 0. */
#define TANDEM_PROTO_OTHER 0
#define TANDEM_PROTO_ICMP 1
#define TANDEM_PROTO_TCP 6
#define TANDEM_PROTO_UDP 17

#define TANDEM_ROLE_CONTROL 1
#define TANDEM_ROLE_TENANT 2

#define TANDEM_EP_AUDIT 1   /* log would-be drops of policy, pass the packet */
#define TANDEM_EP_RECHECK 2 /* re-evaluate tracked flows after a rule change */

#define TANDEM_CONTROL_PLATFORM 1 /* control_peers class: may talk to control interfaces */
#define TANDEM_CONTROL_POD 2      /* control_peers class: pods on the control network */

#define TANDEM_MAX_RULES 65536
#define TANDEM_MAX_IDENTITY 0xffffff /* identities share a 32-bit word with the direction */

/* endpoints: ifindex (host veth, or exclusive ENI) -> this. */
struct endpoint_config {
	__u32 endpoint_id;
	__u32 policy_id;
	__u32 ip; /* be: the only source address the pod may use */
	__u8 mac[6]; /* the only source MAC the pod may use */
	__u8 role;
	__u8 flags;
};

/* config[0]: global knobs, written whole by the agent. */
struct dp_config {
	/* Bumped by every policy commit; its low bit selects the active epoch of the
	 * identities/policies outer maps, so one write switches the whole rule set. */
	__u32 generation;
	__u32 events_per_sec; /* ring-buffer event budget per CPU */
	__u32 events_burst;
	__u32 tcp_syn_timeout_s;
	__u32 tcp_established_timeout_s;
	__u32 tcp_closing_timeout_s;
	__u32 udp_timeout_s;
	__u32 icmp_timeout_s;
	__u32 other_timeout_s;
	__u32 _pad;
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u32 addr; /* be */
};

/* Key of an inner policy trie. prefixlen counts from dir_remote's first byte: 32 bits of
 * direction + remote identity, 8 of protocol, 16 of port (ports: destination port; ICMP:
 * type << 8 | code). */
struct policy_key {
	__u32 prefixlen;
	__u32 dir_remote; /* be: dir << 24 | remote identity (0 = any peer) */
	__u8 proto;
	__u8 port_hi;
	__u8 port_lo;
	__u8 _pad;
};

#define TANDEM_VERDICT_DROP 0
#define TANDEM_VERDICT_ACCEPT 1

/* The final verdict of a port segment, already merged over every rule that applies to it. */
struct policy_value {
	__u32 rule_id; /* 0: no rule matched (default deny) */
	__u8 action;
	__u8 _pad[3];
};

struct policy_outer_key {
	__u32 policy_id;
	__u32 epoch; /* 0 or 1 */
};

#define TANDEM_CT_SYN_SENT 1
#define TANDEM_CT_ESTABLISHED 2
#define TANDEM_CT_CLOSING 3 /* FIN seen */
#define TANDEM_CT_CLOSED 4  /* RST seen */

#define TANDEM_ORIGIN_REMOTE 0 /* the flow was opened towards the pod */
#define TANDEM_ORIGIN_POD 1

/* Conntrack key, always from the pod's point of view, scoped by endpoint so one pod cannot
 * create state that another pod's traffic matches. ICMP echo: both ports are the echo id. */
struct ct_key {
	__u32 endpoint_id;
	__u32 remote_ip; /* be */
	__u32 local_ip;  /* be */
	__u16 remote_port;
	__u16 local_port;
	__u8 proto;
	__u8 _pad[3];
};

struct ct_entry {
	__u64 last_seen_ns;
	__u32 generation; /* dp_config.generation when the flow was last (re)evaluated */
	__u32 rule_id;
	__u16 policy_port; /* the port slot the opening packet was evaluated with */
	__u8 state;
	__u8 origin;
	__u32 _pad;
};

/* stats: per-CPU counters, indexed by these. */
#define TANDEM_STAT_PASS 0
#define TANDEM_STAT_DROP_NO_ENDPOINT 1
#define TANDEM_STAT_DROP_SPOOF_MAC 2
#define TANDEM_STAT_DROP_SPOOF_IP 3
#define TANDEM_STAT_DROP_UNSUPPORTED 4
#define TANDEM_STAT_DROP_MALFORMED 5
#define TANDEM_STAT_DROP_FRAGMENT 6
#define TANDEM_STAT_DROP_POLICY 7
#define TANDEM_STAT_DROP_ENV 8
#define TANDEM_STAT_DROP_CONTROL 9
#define TANDEM_STAT_DROP_NO_POLICY 10
#define TANDEM_STAT_AUDIT 11
#define TANDEM_STAT_EVENTS_LOST 12
#define TANDEM_STAT_NEW_FLOW 13
#define TANDEM_STAT_MAX 16

struct rule_counter {
	__u64 packets;
	__u64 bytes;
};

#define TANDEM_EVENT_DROP 1
#define TANDEM_EVENT_NEW_FLOW 2
#define TANDEM_EVENT_AUDIT 3

/* One ring-buffer record. reason is a TANDEM_STAT_* index. */
struct event {
	__u64 ts_ns;
	__u32 endpoint_id;
	__u32 ifindex;
	__u32 rule_id;
	__u32 saddr; /* be */
	__u32 daddr; /* be */
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 from_pod;
	__u8 kind;
	__u8 reason;
	__u32 _pad;
};

/* Per-CPU token bucket of the event rate limit. */
struct event_budget {
	__u64 last_ns;
	__u64 tokens_milli;
};

#endif
