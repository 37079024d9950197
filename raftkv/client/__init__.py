"""A thin async etcd v3 client (over aetcd) shared by diag and the operator."""
