"""Test support shared by every test package: process control and real etcd clusters."""
