// The vSphere simulator for Zenith's tests and benchmarks: govmomi's own
// simulator (from Debian's golang-github-vmware-govmomi-dev) with an inventory
// of the requested shape, served over TLS with a certificate kept in files (so
// a restart keeps the same identity and the same pinned thumbprint).
// Prints one JSON line {"url", "thumbprint"} once it answers, and runs until
// it is signalled or its standard input closes.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	esx := flag.Bool("esx", false, "a standalone ESXi instead of a vCenter")
	dc := flag.Int("dc", 1, "datacenters")
	cluster := flag.Int("cluster", 1, "clusters per datacenter")
	host := flag.Int("host", 3, "hosts per cluster")
	standalone := flag.Int("standalone-host", 1, "standalone hosts per datacenter")
	vm := flag.Int("vm", 2, "VMs per resource pool and per standalone host")
	pool := flag.Int("pool", 0, "child resource pools per cluster")
	ds := flag.Int("ds", 1, "datastores")
	pg := flag.Int("pg", 1, "distributed port groups per datacenter")
	folder := flag.Int("folder", 0, "datacenters placed in a folder")
	autostart := flag.Bool("autostart", true, "power on the VMs of the model")
	certFile := flag.String("cert", "", "PEM certificate (made, with -key, when missing)")
	keyFile := flag.String("key", "", "PEM private key")
	idle := flag.Duration("idle", 0, "session idle timeout (0: never)")
	tools := flag.String("tools", "", "comma-separated VM names whose VMware Tools run")
	flag.Parse()

	model := simulator.VPX()
	if *esx {
		model = simulator.ESX()
	} else {
		model.Datacenter = *dc
		model.Cluster = *cluster
		model.ClusterHost = *host
		model.Host = *standalone
		model.Pool = *pool
		model.Portgroup = *pg
		model.Folder = *folder
	}
	model.Datastore = *ds
	model.Machine = *vm
	model.Autostart = *autostart
	if err := model.Create(); err != nil {
		log.Fatalf("create model: %v", err)
	}
	simulator.SessionIdleTimeout = *idle
	markTools(*tools)

	cert, err := loadOrMakeCertificate(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("certificate: %v", err)
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.Listen = &url.URL{Host: *listen}
	server := model.Service.NewServer()
	emulateHa(model.Service)

	sum := sha256.Sum256(cert.Certificate[0])
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02X", b)
	}
	address := *server.URL
	address.User = nil
	line, _ := json.Marshal(map[string]string{
		"url":        address.String(),
		"thumbprint": strings.Join(pairs, ":"),
	})
	fmt.Println(string(line))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	select {
	case <-stop:
	case <-closed:
	}
	// Not server.Close(): it waits for every request, and the simulator's WaitForUpdatesEx
	// does not notice a client that went away until its maxWaitSeconds pass.
	model.Remove()
	os.Exit(0)
}

// markTools makes VMware Tools run in the named VMs (the simulator's VMs have none).
func markTools(names string) {
	if names == "" {
		return
	}
	for _, name := range strings.Split(names, ",") {
		for _, ref := range simulator.Map.All("VirtualMachine") {
			vm := ref.(*simulator.VirtualMachine)
			if vm.Name != name {
				continue
			}
			vm.Guest.ToolsStatus = types.VirtualMachineToolsStatusToolsOk
			vm.Guest.ToolsRunningStatus = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
			vm.Summary.Guest.ToolsStatus = types.VirtualMachineToolsStatusToolsOk
		}
	}
}

func loadOrMakeCertificate(certFile, keyFile string) (tls.Certificate, error) {
	if certFile != "" {
		if _, err := os.Stat(certFile); err == nil {
			return tls.LoadX509KeyPair(certFile, keyFile)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	template := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim.zenith.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDer, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPem := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPem := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDer})
	if certFile != "" {
		if err := os.WriteFile(keyFile, keyPem, 0o600); err != nil {
			return tls.Certificate{}, err
		}
		if err := os.WriteFile(certFile, certPem, 0o644); err != nil {
			return tls.Certificate{}, err
		}
	}
	return tls.X509KeyPair(certPem, keyPem)
}
