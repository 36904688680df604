/* Counters and rate-limited ring-buffer events. */
#ifndef TANDEM_EVENTS_H
#define TANDEM_EVENTS_H

#include "maps.h"
#include "parse.h"

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &idx);
	if (c)
		*c += 1;
}

static __always_inline void rule_count(__u32 rule_id, __u32 len)
{
	struct rule_counter *c = bpf_map_lookup_elem(&rule_stats, &rule_id);
	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
}

/* Token bucket per CPU: events_per_sec refill, events_burst capacity, in milli-tokens. */
static __always_inline int event_allowed(const struct dp_config *cfg, __u64 now)
{
	__u32 zero = 0;
	struct event_budget *b = bpf_map_lookup_elem(&event_budget, &zero);
	if (!b || !cfg)
		return 0;
	__u64 cap = (__u64)cfg->events_burst * 1000;
	__u64 elapsed = now - b->last_ns;
	if (elapsed > 1000000000ULL)
		elapsed = 1000000000ULL;
	__u64 tokens = b->tokens_milli + elapsed * cfg->events_per_sec / 1000000ULL;
	if (tokens > cap)
		tokens = cap;
	b->last_ns = now;
	if (tokens < 1000) {
		b->tokens_milli = tokens;
		return 0;
	}
	b->tokens_milli = tokens - 1000;
	return 1;
}

struct event_ctx {
	const struct dp_config *cfg;
	__u32 endpoint_id;
	__u32 ifindex;
	__u8 from_pod;
	__u64 now;
};

static __always_inline void emit_event(const struct event_ctx *ec, const struct pkt *p,
				       __u8 kind, __u8 reason, __u32 rule_id)
{
	if (!event_allowed(ec->cfg, ec->now)) {
		stat_inc(TANDEM_STAT_EVENTS_LOST);
		return;
	}
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(TANDEM_STAT_EVENTS_LOST);
		return;
	}
	e->ts_ns = ec->now;
	e->endpoint_id = ec->endpoint_id;
	e->ifindex = ec->ifindex;
	e->rule_id = rule_id;
	e->saddr = p->saddr;
	e->daddr = p->daddr;
	e->sport = p->sport;
	e->dport = p->proto == TANDEM_PROTO_ICMP ? policy_port(p) : p->dport;
	e->proto = p->proto;
	e->from_pod = ec->from_pod;
	e->kind = kind;
	e->reason = reason;
	e->_pad = 0;
	bpf_ringbuf_submit(e, 0);
}

#endif
