// Package k8s only exists so that the pinned k8s.io/kubernetes release can be
// built from the Go module proxy: its own go.mod points every staging module at
// ./staging, which `go install pkg@version` refuses. The replace block in
// go.mod maps each staging module to its published v0.X.Y instead.
package k8s
