// The pod sandbox ("pause") process of scripts/realnode.sh's node: containerd's
// sandbox_image must exist locally, because nothing is pulled from a registry
// here. It holds the Pod's namespaces open, reaps orphaned children (it is PID 1
// of a shared PID namespace) and exits 0 on SIGTERM or SIGINT, as
// registry.k8s.io/pause does. Built static (CGO_ENABLED=0) by scripts/realnode.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
