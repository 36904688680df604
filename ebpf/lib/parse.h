/* Packet parsing into struct pkt. The common case (IPv4 without options, headers in the
 * linear area) is read in place; everything else goes through bpf_skb_load_bytes, which
 * bounds-checks against the whole (possibly non-linear) skb. Both give the same result. */
#ifndef TANDEM_PARSE_H
#define TANDEM_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

#define ETH_HLEN_ 14
#define ARP_SPA_OFF (ETH_HLEN_ + 14)
#define ICMP_ECHOREPLY_ 0
#define ICMP_ECHO_ 8
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

struct pkt {
	__u8 src_mac[6];
	__u16 eth_proto; /* host order */
	__u32 saddr, daddr; /* be */
	__u16 sport, dport; /* host order; ICMP echo: both the echo id */
	__u8 proto;      /* IP protocol */
	__u8 tcp_flags;
	__u8 icmp_type, icmp_code;
	__u32 len;
};

enum parse_result {
	PARSE_IPV4 = 0,
	PARSE_ARP,
	PARSE_UNSUPPORTED,
	PARSE_MALFORMED,
	PARSE_FRAGMENT,
};

/* The IPv4 header fields we read, at their wire offsets. */
struct ipv4_min {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

#define DIRECT_LEN (ETH_HLEN_ + 20 + 14)
#define PARSE_SLOW -1

/* The IPv4 fields of struct pkt. A non-first fragment has no L4 header to match rules or
 * conntrack against: PARSE_FRAGMENT. */
static __always_inline int read_ip(struct pkt *p, const struct ipv4_min *ip)
{
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	return (bpf_ntohs(ip->frag_off) & 0x1fff) ? PARSE_FRAGMENT : PARSE_IPV4;
}

/* How many bytes of its L4 header a packet of `proto` must hold (what read_l4 reads). */
static __always_inline __u32 l4_need(__u8 proto)
{
	switch (proto) {
	case TANDEM_PROTO_TCP:
		return 14;
	case TANDEM_PROTO_UDP:
		return 4;
	case TANDEM_PROTO_ICMP:
		return 8;
	default:
		return 0;
	}
}

/* The L4 fields of struct pkt, from the first l4_need(p->proto) bytes of the L4 header. */
static __always_inline void read_l4(struct pkt *p, const __u8 *l4)
{
	switch (p->proto) {
	case TANDEM_PROTO_TCP:
		p->tcp_flags = l4[13];
		/* fall through */
	case TANDEM_PROTO_UDP:
		p->sport = (__u16)l4[0] << 8 | l4[1];
		p->dport = (__u16)l4[2] << 8 | l4[3];
		break;
	case TANDEM_PROTO_ICMP:
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		if (p->icmp_type == ICMP_ECHO_ || p->icmp_type == ICMP_ECHOREPLY_) {
			p->sport = (__u16)l4[4] << 8 | l4[5];
			p->dport = p->sport;
		}
		break;
	default:
		break;
	}
}

/* The fast path: no helper call. PARSE_SLOW when the packet is not plain IPv4 with its
 * first DIRECT_LEN bytes in the linear area. */
static __always_inline int parse_direct(struct __sk_buff *skb, struct pkt *p)
{
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *data_end = (__u8 *)(long)skb->data_end;

	if (data + DIRECT_LEN > data_end)
		return PARSE_SLOW;
	const struct ethhdr *eth = (const struct ethhdr *)data;
	const struct ipv4_min *ip = (const struct ipv4_min *)(data + ETH_HLEN_);

	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ver_ihl != 0x45)
		return PARSE_SLOW;
	__builtin_memcpy(p->src_mac, eth->h_source, 6);
	p->eth_proto = ETH_P_IP;
	if (read_ip(p, ip) == PARSE_FRAGMENT)
		return PARSE_FRAGMENT;
	read_l4(p, data + ETH_HLEN_ + 20);
	return PARSE_IPV4;
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct pkt *p)
{
	p->len = skb->len;
	int fast = parse_direct(skb, p);
	if (fast != PARSE_SLOW)
		return fast;

	struct ethhdr eth;
	struct ipv4_min ip;
	__u8 l4[14] = {};

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return PARSE_MALFORMED;
	__builtin_memcpy(p->src_mac, eth.h_source, 6);
	p->eth_proto = bpf_ntohs(eth.h_proto);
	if (p->eth_proto == ETH_P_ARP) {
		if (bpf_skb_load_bytes(skb, ARP_SPA_OFF, &p->saddr, 4))
			return PARSE_MALFORMED;
		return PARSE_ARP;
	}
	if (p->eth_proto != ETH_P_IP)
		return PARSE_UNSUPPORTED;
	if (bpf_skb_load_bytes(skb, ETH_HLEN_, &ip, sizeof(ip)))
		return PARSE_MALFORMED;
	__u32 ihl = (ip.ver_ihl & 0x0f) * 4;
	if ((ip.ver_ihl >> 4) != 4 || ihl < 20)
		return PARSE_MALFORMED;
	if (read_ip(p, &ip) == PARSE_FRAGMENT)
		return PARSE_FRAGMENT;
	__u32 need = l4_need(ip.protocol);
	if (need && bpf_skb_load_bytes(skb, ETH_HLEN_ + ihl, l4, need))
		return PARSE_MALFORMED;
	read_l4(p, l4);
	return PARSE_IPV4;
}

/* The protocol slot of a policy key. */
static __always_inline __u8 policy_proto(__u8 proto)
{
	if (proto == TANDEM_PROTO_TCP || proto == TANDEM_PROTO_UDP || proto == TANDEM_PROTO_ICMP)
		return proto;
	return TANDEM_PROTO_OTHER;
}

/* The port slot a new flow is evaluated with: destination port, ICMP type << 8 | code. */
static __always_inline __u16 policy_port(const struct pkt *p)
{
	if (p->proto == TANDEM_PROTO_TCP || p->proto == TANDEM_PROTO_UDP)
		return p->dport;
	if (p->proto == TANDEM_PROTO_ICMP)
		return (__u16)p->icmp_type << 8 | p->icmp_code;
	return 0;
}

#endif
