"""DNS knowledge: resolv.conf and libc search rules, Corefiles, the cluster DNS and NodeLocal DNSCache,
and the objects whose records the suite checks."""
