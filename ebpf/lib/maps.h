/* Every map of the datapath. All are pinned by name under <pin root>/maps so enforcement
 * survives an agent restart and a new agent adopts them (DESIGN §4). */
#ifndef TANDEM_MAPS_H
#define TANDEM_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

/* Per-endpoint config, keyed by ifindex: of the host veth, or of the exclusive ENI, which
 * keeps its node ifindex inside the pod (so keys stay unique across namespaces). No entry:
 * every packet is dropped, which is how strict start works (write the entry, then set the
 * link up). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct endpoint_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

/* Global knobs: active generation/epoch, conntrack timeouts, event budget. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

/* Peer address -> remote identity, one trie per epoch (0/1): a rule-set commit fills the
 * inactive epoch and flips dp_config.generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(key_size, sizeof(struct lpm_v4_key));
		__uint(value_size, sizeof(__u32));
		__uint(max_entries, 1);
		__uint(map_flags, BPF_F_NO_PREALLOC);
	});
} identities SEC(".maps");

/* {policy id, epoch} -> the policy's trie of final verdicts (struct policy_key ->
 * struct policy_value). One policy per distinct (SG set, tenant environment). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8192);
	__type(key, struct policy_outer_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(key_size, sizeof(struct policy_key));
		__uint(value_size, sizeof(struct policy_value));
		__uint(max_entries, 1);
		__uint(map_flags, BPF_F_NO_PREALLOC);
	});
} policies SEC(".maps");

/* Control network: peer prefix -> TANDEM_CONTROL_* class; the longest prefix decides. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} control_peers SEC(".maps");

/* Conntrack, scoped by endpoint; LRU so a flood evicts old flows instead of failing. Size
 * is set at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

/* Drops and new-flow verdicts for `tandemctl monitor`. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* Event rate limit state. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_budget);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} event_budget SEC(".maps");

/* Per-CPU counters by TANDEM_STAT_* (drops by reason, lost events, ...). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TANDEM_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

/* Per-rule packet/byte counters, by compiled rule id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TANDEM_MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rule_stats SEC(".maps");

#endif
