#!/bin/sh
# k8sdns-cni: the smallest pod network a multi-node kind cluster needs. kind's own kindnetd cannot
# be built here (its module is not served), so this agent does the same three jobs with Debian's
# CNI plugins: a ptp + host-local conflist for this node's podCIDRs, a route to every other node's
# podCIDRs through that node's InternalIP of the same family, and masquerade for traffic leaving
# the pod subnet. POD_SUBNET is one CIDR, or two (IPv4,IPv6) on a dual-stack cluster.
set -eu
: "${NODE_NAME:?NODE_NAME must be set from spec.nodeName}"
: "${POD_SUBNET:?POD_SUBNET must be set}"
conf=/etc/cni/net.d/10-k8sdns.conflist

is_v6() { case "$1" in *:*) return 0 ;; *) return 1 ;; esac; }

# write_conf CIDR[,CIDR]: one host-local range and one default route per family
write_conf() {
  ranges=""; routes=""
  for c in $(echo "$1" | tr ',' ' '); do
    ranges="$ranges${ranges:+, }[{\"subnet\": \"$c\"}]"
    if is_v6 "$c"; then dst="::/0"; else dst="0.0.0.0/0"; fi
    routes="$routes${routes:+, }{\"dst\": \"$dst\"}"
  done
  tmp="$conf.tmp"
  cat > "$tmp" <<CONF
{
  "cniVersion": "0.4.0",
  "name": "k8sdns",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
              "ranges": [$ranges], "routes": [$routes]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
  if ! cmp -s "$tmp" "$conf"; then mv "$tmp" "$conf"; echo "wrote $conf for $1"; else rm -f "$tmp"; fi
}

ensure_masquerade() {
  for subnet in $(echo "$POD_SUBNET" | tr ',' ' '); do
    if is_v6 "$subnet"; then tables=ip6tables; else tables=iptables; fi
    rule="-s $subnet ! -d $subnet -m comment --comment k8sdns-cni -j MASQUERADE"
    # shellcheck disable=SC2086
    $tables -t nat -C POSTROUTING $rule 2>/dev/null || $tables -t nat -A POSTROUTING $rule
  done
}

# route_to CIDRS IPS: each of the other node's podCIDRs through its InternalIP of that family
route_to() {
  for cidr in $(echo "$1" | tr ',' ' '); do
    for ip in $(echo "$2" | tr ',' ' '); do
      if { is_v6 "$cidr" && is_v6 "$ip"; } || { ! is_v6 "$cidr" && ! is_v6 "$ip"; }; then
        ip route replace "$cidr" via "$ip"
      fi
    done
  done
}

while true; do
  # podCIDRs and InternalIPs each as a comma list (each with a leading comma, dropped below)
  kubectl get nodes -o go-template='{{range .items}}{{.metadata.name}} {{range .spec.podCIDRs}},{{.}}{{end}} {{range .status.addresses}}{{if eq .type "InternalIP"}},{{.address}}{{end}}{{end}}{{"\n"}}{{end}}' \
    > /tmp/nodes || { echo "cannot list nodes; retrying"; sleep 2; continue; }
  while read -r name cidrs ips; do
    cidrs=${cidrs#,}; ips=${ips#,}
    [ -n "$cidrs" ] && [ -n "$ips" ] || continue
    if [ "$name" = "$NODE_NAME" ]; then
      write_conf "$cidrs"
    else
      route_to "$cidrs" "$ips"
    fi
  done < /tmp/nodes
  ensure_masquerade
  sleep 10
done
