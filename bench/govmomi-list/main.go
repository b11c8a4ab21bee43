// The reference client of bench/vsphere-discovery.ts, written against
// VMware's own Go SDK (govmomi, from Debian's golang-github-vmware-govmomi-dev).
// Modes (-mode):
//   - list: log in, list every VM with its host (by name) and power state
//     through a ContainerView;
//   - discover: retrieve the property set given in -spec (the one Zenith's
//     discover() reads) over a ContainerView of the given types, decoded into
//     govmomi's typed values;
//   - watch: follow the -spec property set with its own PropertyCollector,
//     one filter over a ContainerView, and WaitForUpdatesEx; a second session
//     makes -changes power changes one at a time, each timed from the call
//     that makes it to the update set that reports it.
//
// Reports the wall time, the HTTP round trips, the peak resident memory (and
// for watch the latencies) as one JSON line.
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
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type counting struct {
	next  http.RoundTripper
	calls int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	atomic.AddInt64(&c.calls, 1)
	return c.next.RoundTrip(r)
}

// spec is one part of the property set of -spec: a container view's types and what to read of
// each type.
type spec struct {
	ViewTypes []string `json:"viewTypes"`
	PropSet   []struct {
		Type    string   `json:"type"`
		PathSet []string `json:"pathSet"`
	} `json:"propSet"`
}

var (
	endpoint = flag.String("url", "", "SDK URL")
	certFile = flag.String("cert", "", "the server's certificate (PEM), pinned by its SHA-1 thumbprint")
	user     = flag.String("user", "bench", "user name")
	pass     = flag.String("password", "bench-password", "password")
	mode     = flag.String("mode", "list", "list, discover or watch")
	specJSON = flag.String("spec", "", "discover and watch: the property set (JSON)")
	changes  = flag.Int("changes", 100, "watch: power changes to time")
)

func main() {
	flag.Parse()
	start := time.Now()
	ctx := context.Background()
	vc, rt := login(ctx)
	out := map[string]interface{}{}
	switch *mode {
	case "list":
		list(ctx, vc, out)
	case "discover":
		discover(ctx, vc, parseSpec(), out)
	case "watch":
		watch(ctx, vc, parseSpec(), out)
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	out["wallMs"] = float64(time.Since(start).Microseconds()) / 1000
	out["roundTrips"] = atomic.LoadInt64(&rt.calls)
	out["maxRssKb"] = peakRss()
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func login(ctx context.Context) (*vim25.Client, *counting) {
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
	return vc, rt
}

func parseSpec() []spec {
	var s []spec
	if err := json.Unmarshal([]byte(*specJSON), &s); err != nil || len(s) == 0 {
		log.Fatalf("-spec: %v", err)
	}
	return s
}

func list(ctx context.Context, vc *vim25.Client, out map[string]interface{}) {
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
	out["vms"] = len(vms)
	out["withHost"] = listed
	out["running"] = running
}

// filterSpec is the -spec property set over a new ContainerView of its types.
func filterSpec(ctx context.Context, vc *vim25.Client, s spec) types.PropertyFilterSpec {
	v, err := view.NewManager(vc).CreateContainerView(ctx, vc.ServiceContent.RootFolder, s.ViewTypes, true)
	if err != nil {
		log.Fatal(err)
	}
	fs := types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{{
			Obj:  v.Reference(),
			Skip: types.NewBool(true),
			SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{
				Type: "ContainerView",
				Path: "view",
				Skip: types.NewBool(false),
			}},
		}},
	}
	for _, p := range s.PropSet {
		fs.PropSet = append(fs.PropSet, types.PropertySpec{Type: p.Type, PathSet: p.PathSet})
	}
	return fs
}

// discover reads the property set, every page, into govmomi's typed ObjectContent values.
func discover(ctx context.Context, vc *vim25.Client, specs []spec, out map[string]interface{}) {
	req := types.RetrievePropertiesEx{
		This:    vc.ServiceContent.PropertyCollector,
		Options: types.RetrieveOptions{MaxObjects: 5000},
	}
	for _, s := range specs {
		req.SpecSet = append(req.SpecSet, filterSpec(ctx, vc, s))
	}
	res, err := methods.RetrievePropertiesEx(ctx, vc, &req)
	if err != nil {
		log.Fatal(err)
	}
	var objects []types.ObjectContent
	result := res.Returnval
	for result != nil {
		objects = append(objects, result.Objects...)
		if result.Token == "" {
			break
		}
		next, err := methods.ContinueRetrievePropertiesEx(ctx, vc, &types.ContinueRetrievePropertiesEx{
			This: vc.ServiceContent.PropertyCollector, Token: result.Token})
		if err != nil {
			log.Fatal(err)
		}
		result = &next.Returnval
	}
	vms, props := 0, 0
	for _, o := range objects {
		if o.Obj.Type == "VirtualMachine" {
			vms++
		}
		props += len(o.PropSet)
	}
	out["vms"] = vms
	out["objects"] = len(objects)
	out["properties"] = props
}

// watch follows the first part of the property set (a view of VMs with their power state).
func watch(ctx context.Context, vc *vim25.Client, specs []spec, out map[string]interface{}) {
	s := specs[0]
	created, err := methods.CreatePropertyCollector(ctx, vc, &types.CreatePropertyCollector{This: vc.ServiceContent.PropertyCollector})
	if err != nil {
		log.Fatal(err)
	}
	pc := created.Returnval
	defer methods.DestroyPropertyCollector(ctx, vc, &types.DestroyPropertyCollector{This: pc})
	if _, err := methods.CreateFilter(ctx, vc, &types.CreateFilter{This: pc, Spec: filterSpec(ctx, vc, s)}); err != nil {
		log.Fatal(err)
	}
	maxWait := int32(30)
	var done int32
	wait := func(version string) *types.UpdateSet {
		res, err := methods.WaitForUpdatesEx(ctx, vc, &types.WaitForUpdatesEx{
			This: pc, Version: version, Options: &types.WaitOptions{MaxWaitSeconds: &maxWait}})
		if err != nil {
			if atomic.LoadInt32(&done) == 1 {
				select {} // the collector is being destroyed at the end of the run
			}
			log.Fatal(err)
		}
		return res.Returnval
	}
	// The first update set: every object with its state.
	power := map[types.ManagedObjectReference]string{}
	var vms []types.ManagedObjectReference
	first := wait("")
	for _, fs := range first.FilterSet {
		for _, o := range fs.ObjectSet {
			if o.Obj.Type != "VirtualMachine" {
				continue
			}
			vms = append(vms, o.Obj)
			for _, c := range o.ChangeSet {
				if c.Name == "runtime.powerState" {
					power[o.Obj] = string(c.Val.(types.VirtualMachinePowerState))
				}
			}
		}
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Value < vms[j].Value })
	type seen struct {
		vm    types.ManagedObjectReference
		state string
		at    time.Time
	}
	reports := make(chan seen, 1024)
	go func() {
		version := first.Version
		for {
			set := wait(version)
			if set == nil {
				continue
			}
			version = set.Version
			at := time.Now()
			for _, fs := range set.FilterSet {
				for _, o := range fs.ObjectSet {
					for _, c := range o.ChangeSet {
						if c.Name == "runtime.powerState" {
							reports <- seen{o.Obj, string(c.Val.(types.VirtualMachinePowerState)), at}
						}
					}
				}
			}
		}
	}()
	operator, _ := login(ctx)
	var latencies []float64
	for n := 0; n < *changes; n++ {
		vm := vms[n%len(vms)]
		want := "poweredOff"
		t0 := time.Now()
		var task types.ManagedObjectReference
		if power[vm] == "poweredOn" {
			res, err := methods.PowerOffVM_Task(ctx, operator, &types.PowerOffVM_Task{This: vm})
			if err != nil {
				log.Fatal(err)
			}
			task = res.Returnval
		} else {
			want = "poweredOn"
			res, err := methods.PowerOnVM_Task(ctx, operator, &types.PowerOnVM_Task{This: vm})
			if err != nil {
				log.Fatal(err)
			}
			task = res.Returnval
		}
		awaitTask(ctx, operator, task)
		for report := range reports {
			if report.vm == vm && report.state == want {
				power[vm] = want
				latencies = append(latencies, float64(report.at.Sub(t0).Microseconds())/1000)
				break
			}
		}
	}
	atomic.StoreInt32(&done, 1)
	sort.Float64s(latencies)
	pick := func(p float64) float64 {
		i := int(p / 100 * float64(len(latencies)))
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return latencies[i]
	}
	out["vms"] = len(vms)
	out["changes"] = len(latencies)
	out["p50Ms"] = pick(50)
	out["p99Ms"] = pick(99)
	out["maxMs"] = latencies[len(latencies)-1]
}

// awaitTask polls the task's state as Zenith's waitForTask does (no filter of its own, which
// would add to the simulator's work for every update).
func awaitTask(ctx context.Context, c *vim25.Client, task types.ManagedObjectReference) {
	for delay := 20 * time.Millisecond; ; {
		res, err := methods.RetrievePropertiesEx(ctx, c, &types.RetrievePropertiesEx{
			This: c.ServiceContent.PropertyCollector,
			SpecSet: []types.PropertyFilterSpec{{
				ObjectSet: []types.ObjectSpec{{Obj: task}},
				PropSet:   []types.PropertySpec{{Type: "Task", PathSet: []string{"info.state"}}},
			}},
		})
		if err != nil {
			log.Fatal(err)
		}
		if res.Returnval != nil && len(res.Returnval.Objects) == 1 && len(res.Returnval.Objects[0].PropSet) == 1 {
			state := res.Returnval.Objects[0].PropSet[0].Val.(types.TaskInfoState)
			if state == types.TaskInfoStateSuccess {
				return
			}
			if state == types.TaskInfoStateError {
				log.Fatalf("task %s failed", task.Value)
			}
		}
		time.Sleep(delay)
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
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
