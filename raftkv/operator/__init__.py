"""The RaftCluster operator: kopf handlers around a pure planner.

One job per module:
- ``types``, ``quorum``, ``view``, ``waits``, ``planner``: the pure planner (observation in,
  one safe step or a reasoned wait out);
- ``objects``: the owned Kubernetes objects as plain dicts, and each member's flags;
- ``observe``: the members over etcd's API (Status, MemberList, /version) and the
  observation the planner reads;
- ``status``: the status document and the recorded step (``status.inProgress``);
- ``kube``: the Kubernetes calls; ``execute``: one step, idempotently;
- ``reconcile``: observe, plan, record, execute, report; ``handlers``: the kopf edges
  and the timer; ``main``: the ``raftkv-operator`` command.

Why one pod and one volume claim per member rather than a StatefulSet: a StatefulSet can
only remove its highest ordinal, but the member to remove is the one that is down, or a
follower rather than the leader; a replacement member needs an empty volume under the
same name while its peers keep theirs; and each member needs its own command line
(``--initial-cluster-state=new`` for the first, ``existing`` with the current members for
every later one), which one pod template cannot give without an entrypoint script that
asks the cluster. The price is that the operator recreates a member's pod itself when it
disappears (it does so before anything else, even without quorum, since it changes no
membership).
"""
