// vSphere HA (DAS) as vCenter shows it, which govmomi's simulator does not:
// its ReconfigureComputeResource_Task accepts a ClusterConfigSpecEx's
// dasConfig and ignores it, keeps the per-VM overrides (dasVmConfigSpec)
// without telling the property collector, and never sets a host's
// runtime.dasHostState. This wraps the SOAP endpoint: after a
// ReconfigureComputeResource_Task of a cluster succeeds, the dasConfig fields
// the spec sets are merged into the cluster's configurationEx (as vCenter does
// with modify=true), the change is reported to property collectors, and the
// cluster's hosts get the state vSphere HA's agents (FDM) would report once
// configured: one master, the other connected hosts connectedToMaster, hosts
// in maintenance uninitialized; none (unset) while HA is off.
package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// emulateHa routes the SOAP endpoint through the HA emulation. Host-specific
// ServeMux patterns take precedence over the simulator's own "/sdk".
func emulateHa(service *simulator.Service) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveWithHa(service, w, r)
	})
	for _, host := range []string{"127.0.0.1", "localhost"} {
		service.ServeMux.Handle(host+simulator.Map.Path, handler)
	}
}

func serveWithHa(service *simulator.Service, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if r.Method != http.MethodPost || !bytes.Contains(body, []byte("ReconfigureComputeResource_Task")) {
		service.ServeSDK(w, r)
		return
	}
	var spec *types.ClusterConfigSpecEx
	var self types.ManagedObjectReference
	if method, err := simulator.UnmarshalBody(types.TypeFunc(), body); err == nil {
		if req, ok := method.Body.(*types.ReconfigureComputeResource_Task); ok {
			spec, _ = req.Spec.(*types.ClusterConfigSpecEx)
			self = req.This
		}
	}
	recorder := httptest.NewRecorder()
	service.ServeSDK(recorder, r)
	if spec != nil && taskSucceeded(recorder.Body.Bytes()) {
		if cluster, ok := simulator.Map.Get(self).(*simulator.ClusterComputeResource); ok {
			applyDas(cluster, spec)
		}
	}
	for key, values := range recorder.Header() {
		w.Header()[key] = values
	}
	w.WriteHeader(recorder.Code)
	_, _ = w.Write(recorder.Body.Bytes())
}

// taskSucceeded reads the task the reply names (the simulator runs it before it answers).
func taskSucceeded(reply []byte) bool {
	start := bytes.Index(reply, []byte(`type="Task">`))
	if start < 0 {
		return false
	}
	rest := reply[start+len(`type="Task">`):]
	end := bytes.IndexByte(rest, '<')
	if end < 0 {
		return false
	}
	ref := types.ManagedObjectReference{Type: "Task", Value: string(rest[:end])}
	task, ok := simulator.Map.Get(ref).(*simulator.Task)
	return ok && task.Info.State == types.TaskInfoStateSuccess
}

func applyDas(cluster *simulator.ClusterComputeResource, spec *types.ClusterConfigSpecEx) {
	var enabled bool
	var hosts []types.ManagedObjectReference
	simulator.Map.WithLock(cluster, func() {
		config, ok := cluster.ConfigurationEx.(*types.ClusterConfigInfoEx)
		if !ok {
			return
		}
		if spec.DasConfig != nil {
			mergeDas(&config.DasConfig, spec.DasConfig)
		}
		enabled = config.DasConfig.Enabled != nil && *config.DasConfig.Enabled
		hosts = append(hosts, cluster.Host...)
		simulator.Map.Update(cluster, []types.PropertyChange{{Name: "configurationEx", Val: config}})
	})
	master := true
	for _, ref := range hosts {
		host, ok := simulator.Map.Get(ref).(*simulator.HostSystem)
		if !ok {
			continue
		}
		simulator.Map.WithLock(host, func() {
			var state *types.ClusterDasFdmHostState
			if enabled {
				name := string(types.ClusterDasFdmAvailabilityStateConnectedToMaster)
				if host.Runtime.InMaintenanceMode {
					name = string(types.ClusterDasFdmAvailabilityStateUninitialized)
				} else if master {
					name = string(types.ClusterDasFdmAvailabilityStateMaster)
					master = false
				}
				state = &types.ClusterDasFdmHostState{State: name}
			}
			if sameState(host.Runtime.DasHostState, state) {
				return
			}
			host.Runtime.DasHostState = state
			change := types.PropertyChange{Name: "runtime.dasHostState"}
			if state != nil {
				change.Val = state // a typed nil would not read as "unset"
			}
			simulator.Map.Update(host, []types.PropertyChange{change})
		})
	}
}

func sameState(a, b *types.ClusterDasFdmHostState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.State == b.State
}

// mergeDas sets what the spec sets; unset fields keep their value.
func mergeDas(into *types.ClusterDasConfigInfo, spec *types.ClusterDasConfigInfo) {
	if spec.Enabled != nil {
		into.Enabled = spec.Enabled
	}
	if spec.VmMonitoring != "" {
		into.VmMonitoring = spec.VmMonitoring
	}
	if spec.HostMonitoring != "" {
		into.HostMonitoring = spec.HostMonitoring
	}
	if spec.VmComponentProtecting != "" {
		into.VmComponentProtecting = spec.VmComponentProtecting
	}
	if spec.FailoverLevel != 0 {
		into.FailoverLevel = spec.FailoverLevel
	}
	if spec.AdmissionControlPolicy != nil {
		into.AdmissionControlPolicy = spec.AdmissionControlPolicy
	}
	if spec.AdmissionControlEnabled != nil {
		into.AdmissionControlEnabled = spec.AdmissionControlEnabled
	}
	if spec.DefaultVmSettings != nil {
		if into.DefaultVmSettings == nil {
			into.DefaultVmSettings = &types.ClusterDasVmSettings{}
		}
		settings := spec.DefaultVmSettings
		if settings.RestartPriority != "" {
			into.DefaultVmSettings.RestartPriority = settings.RestartPriority
		}
		if settings.IsolationResponse != "" {
			into.DefaultVmSettings.IsolationResponse = settings.IsolationResponse
		}
		if settings.RestartPriorityTimeout != 0 {
			into.DefaultVmSettings.RestartPriorityTimeout = settings.RestartPriorityTimeout
		}
	}
	if spec.HBDatastoreCandidatePolicy != "" {
		into.HBDatastoreCandidatePolicy = spec.HBDatastoreCandidatePolicy
	}
}
