// Command node-cache is the NodeLocal DNSCache agent of pytest-k8sdns' kind clusters: a CoreDNS
// build with only the plugins a node cache needs, plus the node setup that KEP 1024 describes. It
// stands in for k8s.io/dns's node-cache, whose module the Go proxy here does not serve.
//
// Before CoreDNS starts it adds a dummy interface holding the local IPs (169.254.20.10 and, in
// kube-proxy iptables mode, the kube-dns ClusterIP), and raw-table NOTRACK plus filter ACCEPT
// rules for port 53 on those IPs, so queries reach this process and not kube-proxy's DNAT. It
// re-checks both every -syncinterval, counts failures in coredns_nodecache_setup_errors_total on
// -metrics-listen-address, and removes both on SIGTERM/SIGINT/SIGQUIT.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/coremain"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	// The server type and the plugins a node cache's Corefile uses; nothing else is linked in.
	_ "github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// Version is set with -ldflags "-X main.Version=...".
var Version = "dev"

var (
	localIPs      = flag.String("localip", "169.254.20.10", "comma-separated IPs to put on the interface and answer on")
	ifaceName     = flag.String("interfacename", "nodelocaldns", "name of the dummy interface holding -localip")
	ifaceTypes    = flag.String("interfacetypes", "dummy,ifb", "link types to try in order for that interface (some kernels lack dummy)")
	setupIface    = flag.Bool("setupinterface", true, "create the dummy interface and its addresses")
	setupIPTables = flag.Bool("setupiptables", true, "add NOTRACK and ACCEPT rules for port 53 on -localip")
	syncInterval  = flag.Duration("syncinterval", 60*time.Second, "how often the interface and rules are re-checked")
	metricsAddr   = flag.String("metrics-listen-address", "0.0.0.0:9353", "where coredns_nodecache_setup_errors_total is served")
	skipTeardown  = flag.Bool("skipteardown", false, "leave the interface and rules in place on exit")
	showVersion   = flag.Bool("nodecache-version", false, "print the agent and CoreDNS versions and exit")
)

var setupErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "coredns",
	Subsystem: "nodecache",
	Name:      "setup_errors_total",
	Help:      "Errors while setting up the node cache's interface or iptables rules, by type.",
}, []string{"errortype"})

// rule is one iptables rule: the table, the chain and the match-and-target arguments.
type rule struct {
	table, chain string
	args         []string
}

type agent struct {
	ips   []net.IP
	rules map[string][]rule // by command: iptables or ip6tables
	mu    sync.Mutex
}

func newAgent(list string) (*agent, error) {
	a := &agent{rules: map[string][]rule{}}
	for _, s := range strings.Split(list, ",") {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return nil, fmt.Errorf("-localip: %q is not an IP address", s)
		}
		a.ips = append(a.ips, ip)
	}
	for _, ip := range a.ips {
		cmd := "iptables"
		if ip.To4() == nil {
			cmd = "ip6tables"
		}
		for _, proto := range []string{"udp", "tcp"} {
			note := []string{"-m", "comment", "--comment", "k8sdns node-cache: skip conntrack for local DNS"}
			dst := []string{"-p", proto, "-d", ip.String(), "--dport", "53"}
			src := []string{"-p", proto, "-s", ip.String(), "--sport", "53"}
			join := func(m, target []string) []string { return append(append(append([]string{}, m...), note...), target...) }
			a.rules[cmd] = append(a.rules[cmd],
				// queries from pods (PREROUTING) and from the node itself (OUTPUT) skip conntrack, so
				// kube-proxy's DNAT of the ClusterIP never sees them; so do the answers
				rule{"raw", "PREROUTING", join(dst, []string{"-j", "NOTRACK"})},
				rule{"raw", "OUTPUT", join(dst, []string{"-j", "NOTRACK"})},
				rule{"raw", "OUTPUT", join(src, []string{"-j", "NOTRACK"})},
				// untracked packets match no ESTABLISHED rule: accept them explicitly
				rule{"filter", "INPUT", join(dst, []string{"-j", "ACCEPT"})},
				rule{"filter", "OUTPUT", join(src, []string{"-j", "ACCEPT"})},
			)
		}
	}
	return a, nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ensureInterface creates the dummy interface and its addresses if any is missing.
func (a *agent) ensureInterface() {
	if _, err := net.InterfaceByName(*ifaceName); err != nil {
		var tried []string
		for _, kind := range strings.Split(*ifaceTypes, ",") {
			err := run("ip", "link", "add", *ifaceName, "type", kind)
			if err == nil {
				log.Printf("[INFO] node-cache: added interface %s (type %s)", *ifaceName, kind)
				tried = nil
				break
			}
			tried = append(tried, err.Error())
		}
		if tried != nil {
			a.fail("interface", fmt.Errorf("%s", strings.Join(tried, "; ")))
			return
		}
	}
	have := map[string]bool{}
	if iface, err := net.InterfaceByName(*ifaceName); err == nil {
		addrs, _ := iface.Addrs()
		for _, addr := range addrs {
			if n, ok := addr.(*net.IPNet); ok {
				have[n.IP.String()] = true
			}
		}
	}
	for _, ip := range a.ips {
		if have[ip.String()] {
			continue
		}
		prefix := "/32"
		if ip.To4() == nil {
			prefix = "/128"
		}
		if err := run("ip", "addr", "add", ip.String()+prefix, "dev", *ifaceName); err != nil {
			a.fail("interface", err)
			continue
		}
		log.Printf("[INFO] node-cache: added %s to %s", ip, *ifaceName)
	}
	if err := run("ip", "link", "set", *ifaceName, "up"); err != nil {
		a.fail("interface", err)
	}
}

// ensureRules inserts every missing rule at the top of its chain.
func (a *agent) ensureRules() {
	for cmd, rules := range a.rules {
		for _, r := range rules {
			check := append([]string{"-w", "5", "-t", r.table, "-C", r.chain}, r.args...)
			if run(cmd, check...) == nil {
				continue
			}
			insert := append([]string{"-w", "5", "-t", r.table, "-I", r.chain, "1"}, r.args...)
			if err := run(cmd, insert...); err != nil {
				a.fail("iptables", err)
				continue
			}
			log.Printf("[INFO] node-cache: added %s -t %s %s %s", cmd, r.table, r.chain, strings.Join(r.args, " "))
		}
	}
}

func (a *agent) ensure() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if *setupIface {
		a.ensureInterface()
	}
	if *setupIPTables {
		a.ensureRules()
	}
}

func (a *agent) fail(kind string, err error) {
	setupErrors.WithLabelValues(kind).Inc()
	log.Printf("[ERROR] node-cache: %v", err)
}

// teardown removes what ensure added, so a deleted DaemonSet leaves the node as it was.
func (a *agent) teardown() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if *setupIPTables {
		for cmd, rules := range a.rules {
			for _, r := range rules {
				del := append([]string{"-w", "5", "-t", r.table, "-D", r.chain}, r.args...)
				for run(cmd, del...) == nil {
				}
			}
		}
	}
	if *setupIface {
		if err := run("ip", "link", "del", *ifaceName); err != nil {
			log.Printf("[WARNING] node-cache: %v", err)
		}
	}
	log.Printf("[INFO] node-cache: removed interface %s and its rules", *ifaceName)
}

func main() {
	flag.Parse()
	if *showVersion {
		fmt.Printf("node-cache %s (k8sdns), CoreDNS %s\n", Version, coremain.CoreVersion)
		return
	}
	for _, name := range []string{"plugins", "version"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() == "true" {
			coremain.Run() // prints and exits: no node setup for a question
			return
		}
	}
	a, err := newAgent(*localIPs)
	if err != nil {
		log.Fatalf("[FATAL] node-cache: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(setupErrors)
	for _, kind := range []string{"interface", "iptables"} {
		setupErrors.WithLabelValues(kind).Add(0)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go func() { log.Fatalf("[FATAL] node-cache metrics: %v", http.ListenAndServe(*metricsAddr, mux)) }()

	a.ensure() // before CoreDNS starts: bind needs the addresses to exist
	if !*skipTeardown {
		caddy.OnProcessExit = append(caddy.OnProcessExit, a.teardown)
	}
	go func() {
		for range time.Tick(*syncInterval) {
			a.ensure()
		}
	}()
	log.Printf("[INFO] node-cache %s: serving on %s (interface %s)", Version, *localIPs, *ifaceName)
	coremain.Run()
}
