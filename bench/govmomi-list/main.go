// The reference client of bench/vsphere-discovery.ts, written against
// VMware's own Go SDK (govmomi, from Debian's golang-github-vmware-govmomi-dev):
// log in, list every VM with its host (by name) and power state through a
// ContainerView, and report the wall time, the HTTP round trips and the peak
// resident memory as one JSON line.
package main

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
)

type counting struct {
	next  http.RoundTripper
	calls int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	atomic.AddInt64(&c.calls, 1)
	return c.next.RoundTrip(r)
}

func main() {
	endpoint := flag.String("url", "", "SDK URL")
	certFile := flag.String("cert", "", "the server's certificate (PEM), pinned by its SHA-1 thumbprint")
	user := flag.String("user", "bench", "user name")
	pass := flag.String("password", "bench-password", "password")
	flag.Parse()

	start := time.Now()
	ctx := context.Background()
	u, err := soap.ParseURL(*endpoint)
	if err != nil {
		log.Fatal(err)
	}
	sc := soap.NewClient(u, false)
	if *certFile != "" {
		sc.SetThumbprint(u.Host, thumbprint(*certFile))
	}
	rt := &counting{next: sc.Client.Transport}
	sc.Client.Transport = rt
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		log.Fatal(err)
	}
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(*user, *pass)); err != nil {
		log.Fatal(err)
	}
	v, err := view.NewManager(vc).CreateContainerView(ctx, vc.ServiceContent.RootFolder, []string{"VirtualMachine", "HostSystem"}, true)
	if err != nil {
		log.Fatal(err)
	}
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "runtime.host", "runtime.powerState"}, &vms); err != nil {
		log.Fatal(err)
	}
	var hosts []mo.HostSystem
	if err := v.Retrieve(ctx, []string{"HostSystem"}, []string{"name"}, &hosts); err != nil {
		log.Fatal(err)
	}
	hostNames := make(map[string]string, len(hosts))
	for _, h := range hosts {
		hostNames[h.Self.Value] = h.Name
	}
	listed, running := 0, 0
	for _, vm := range vms {
		if vm.Runtime.Host != nil && hostNames[vm.Runtime.Host.Value] != "" {
			listed++
		}
		if vm.Runtime.PowerState == "poweredOn" {
			running++
		}
	}
	elapsed := time.Since(start)
	out, _ := json.Marshal(map[string]interface{}{
		"vms":        len(vms),
		"withHost":   listed,
		"running":    running,
		"wallMs":     float64(elapsed.Microseconds()) / 1000,
		"roundTrips": atomic.LoadInt64(&rt.calls),
		"maxRssKb":   peakRss(),
	})
	fmt.Println(string(out))
}

func thumbprint(file string) string {
	data, err := ioutil.ReadFile(file)
	if err != nil {
		log.Fatal(err)
	}
	block, _ := pem.Decode(data)
	sum := sha1.Sum(block.Bytes)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(pairs, ":")
}

// peakRss is VmHWM from /proc/self/status, in KiB.
func peakRss() int64 {
	data, _ := ioutil.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%d", &kb)
			return kb
		}
	}
	return 0
}
