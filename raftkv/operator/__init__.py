"""The RaftCluster operator: kopf handlers and the pure scaling planner."""
