"""Consul Connect on Kubernetes (consul-k8s): reader, writer and coexistence."""
