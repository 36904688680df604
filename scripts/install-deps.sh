#!/usr/bin/env bash
# Install what Tandem's build, demo and tests need on Debian 12 (run as root). Idempotent: does
# nothing when everything is already there.
set -euo pipefail

packages=(
  clang-19 llvm-19 libbpf-dev bpftool   # the eBPF datapath (C, built by clang-19)
  iproute2 iputils-ping iptables        # the lab's namespaces and probes; iptables for baselines
  iperf3                                # the policy benchmark (TCP throughput, UDP packet rate)
  containernetworking-plugins           # reference ptp + host-local, for the CNI benchmark
  podman runc busybox-static            # a real container runtime drives the plugin in a test
  make
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
