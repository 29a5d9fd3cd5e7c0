#!/bin/sh
# k8sdns-cni: the smallest pod network a multi-node kind cluster needs. kind's own kindnetd cannot
# be built here (its module is not served), so this agent does the same three jobs with Debian's
# CNI plugins: a ptp + host-local conflist for this node's podCIDR, a route to every other node's
# podCIDR through that node's InternalIP, and masquerade for traffic leaving the pod subnet.
set -eu
: "${NODE_NAME:?NODE_NAME must be set from spec.nodeName}"
: "${POD_SUBNET:?POD_SUBNET must be set}"
conf=/etc/cni/net.d/10-k8sdns.conflist

write_conf() {
  tmp="$conf.tmp"
  cat > "$tmp" <<CONF
{
  "cniVersion": "0.4.0",
  "name": "k8sdns",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
              "ranges": [[{"subnet": "$1"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
  if ! cmp -s "$tmp" "$conf"; then mv "$tmp" "$conf"; echo "wrote $conf for $1"; else rm -f "$tmp"; fi
}

ensure_masquerade() {
  rule="-s $POD_SUBNET ! -d $POD_SUBNET -m comment --comment k8sdns-cni -j MASQUERADE"
  # shellcheck disable=SC2086
  iptables -t nat -C POSTROUTING $rule 2>/dev/null || iptables -t nat -A POSTROUTING $rule
}

while true; do
  kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' \
    > /tmp/nodes || { echo "cannot list nodes; retrying"; sleep 2; continue; }
  while read -r name cidr ip; do
    [ -n "${cidr:-}" ] && [ -n "${ip:-}" ] || continue
    if [ "$name" = "$NODE_NAME" ]; then
      write_conf "$cidr"
    else
      ip route replace "$cidr" via "$ip"
    fi
  done < /tmp/nodes
  ensure_masquerade
  sleep 10
done
