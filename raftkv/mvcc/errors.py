"""etcd's client-visible errors, with etcd v3.5's exact gRPC codes and messages.

Each error carries a gRPC status code name and the message etcdctl prints, so the server
maps it to the wire in one place and differential tests can compare text with etcd's.
"""

from __future__ import annotations


class EtcdError(Exception):
    code = "UNKNOWN"
    message = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message


def _err(name: str, code: str, message: str) -> type[EtcdError]:
    return type(name, (EtcdError,), {"code": code, "message": message})


EmptyKey = _err("EmptyKey", "INVALID_ARGUMENT", "etcdserver: key is not provided")
KeyNotFound = _err("KeyNotFound", "INVALID_ARGUMENT", "etcdserver: key not found")
ValueProvided = _err("ValueProvided", "INVALID_ARGUMENT", "etcdserver: value is provided")
LeaseProvided = _err("LeaseProvided", "INVALID_ARGUMENT", "etcdserver: lease is provided")
TooManyOps = _err("TooManyOps", "INVALID_ARGUMENT",
                  "etcdserver: too many operations in txn request")
DuplicateKey = _err("DuplicateKey", "INVALID_ARGUMENT",
                    "etcdserver: duplicate key given in txn request")
Compacted = _err("Compacted", "OUT_OF_RANGE",
                 "etcdserver: mvcc: required revision has been compacted")
FutureRev = _err("FutureRev", "OUT_OF_RANGE",
                 "etcdserver: mvcc: required revision is a future revision")
InvalidSortOption = _err("InvalidSortOption", "INVALID_ARGUMENT",
                         "etcdserver: invalid sort option")
# not an etcd error: etcd evaluates unknown compare results/targets; raftkv refuses them
InvalidCompare = _err("InvalidCompare", "INVALID_ARGUMENT", "etcdserver: invalid compare option")
# not an etcd error: etcd 3.6.16's member panics on an undefined alarm action
InvalidAlarmAction = _err("InvalidAlarmAction", "INVALID_ARGUMENT",
                          "etcdserver: invalid alarm action")
MAX_LEASE_TTL = 9_000_000_000  # etcd's lease.MaxLeaseTTL
LeaseTTLTooLarge = _err("LeaseTTLTooLarge", "OUT_OF_RANGE", "etcdserver: too large lease TTL")
NoSpace = _err("NoSpace", "RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded")
LeaseNotFound = _err("LeaseNotFound", "NOT_FOUND", "etcdserver: requested lease not found")
LeaseExist = _err("LeaseExist", "FAILED_PRECONDITION", "etcdserver: lease already exists")
RequestTooLarge = _err("RequestTooLarge", "INVALID_ARGUMENT",
                       "etcdserver: request is too large")
NoLeader = _err("NoLeader", "UNAVAILABLE", "etcdserver: no leader")
NotCapable = _err("NotCapable", "FAILED_PRECONDITION", "etcdserver: not capable")
Stopped = _err("Stopped", "UNAVAILABLE", "etcdserver: server stopped")
Timeout = _err("Timeout", "UNAVAILABLE", "etcdserver: request timed out")
TooManyRequests = _err("TooManyRequests", "RESOURCE_EXHAUSTED", "etcdserver: too many requests")
NotLeader = _err("NotLeader", "FAILED_PRECONDITION", "etcdserver: not leader")
BadLeaderTransferee = _err("BadLeaderTransferee", "FAILED_PRECONDITION",
                           "etcdserver: bad leader transferee")
LeaderChanged = _err("LeaderChanged", "UNAVAILABLE",
                     "etcdserver: leader changed")
# the proposal's outcome is unknown: it was proposed in a term whose leader is gone
TimeoutDueToLeaderFail = _err("TimeoutDueToLeaderFail", "UNAVAILABLE",
                              "etcdserver: request timed out, possibly due to previous "
                              "leader failure")
MemberNotFound = _err("MemberNotFound", "NOT_FOUND", "etcdserver: member not found")
MemberExist = _err("MemberExist", "FAILED_PRECONDITION", "etcdserver: member ID already exist")
PeerURLExist = _err("PeerURLExist", "FAILED_PRECONDITION",
                    "etcdserver: Peer URLs already exists")
MemberBadURLs = _err("MemberBadURLs", "INVALID_ARGUMENT",
                     "etcdserver: given member URLs are invalid")
MemberNotLearner = _err("MemberNotLearner", "FAILED_PRECONDITION",
                        "etcdserver: can only promote a learner member")
LearnerNotReady = _err("LearnerNotReady", "FAILED_PRECONDITION",
                       "etcdserver: can only promote a learner member which is in sync with "
                       "leader")
TooManyLearners = _err("TooManyLearners", "FAILED_PRECONDITION",
                       "etcdserver: too many learner members in cluster")
NotEnoughStarted = _err("NotEnoughStarted", "FAILED_PRECONDITION",
                        "etcdserver: re-configuration failed due to not enough started members")
Corrupt = _err("Corrupt", "DATA_LOSS", "etcdserver: corrupt cluster")

# --- auth (etcd's rpctypes for server/auth errors) ---------------------------------------
RootUserNotExist = _err("RootUserNotExist", "FAILED_PRECONDITION",
                        "etcdserver: root user does not exist")
RootRoleNotExist = _err("RootRoleNotExist", "FAILED_PRECONDITION",
                        "etcdserver: root user does not have root role")
UserAlreadyExist = _err("UserAlreadyExist", "FAILED_PRECONDITION",
                        "etcdserver: user name already exists")
UserEmpty = _err("UserEmpty", "INVALID_ARGUMENT", "etcdserver: user name is empty")
UserNotFound = _err("UserNotFound", "FAILED_PRECONDITION", "etcdserver: user name not found")
RoleAlreadyExist = _err("RoleAlreadyExist", "FAILED_PRECONDITION",
                        "etcdserver: role name already exists")
RoleNotFound = _err("RoleNotFound", "FAILED_PRECONDITION", "etcdserver: role name not found")
RoleEmpty = _err("RoleEmpty", "INVALID_ARGUMENT", "etcdserver: role name is empty")
AuthFailed = _err("AuthFailed", "INVALID_ARGUMENT",
                  "etcdserver: authentication failed, invalid user ID or password")
# etcd maps no gRPC code to it: the client sees codes.Unknown and the auth package's text
NoPasswordUser = _err("NoPasswordUser", "UNKNOWN",
                      "auth: authentication failed, password was given for no password user")
PermissionNotGiven = _err("PermissionNotGiven", "INVALID_ARGUMENT",
                          "etcdserver: permission not given")
PermissionDenied = _err("PermissionDenied", "PERMISSION_DENIED", "etcdserver: permission denied")
RoleNotGranted = _err("RoleNotGranted", "FAILED_PRECONDITION",
                      "etcdserver: role is not granted to the user")
PermissionNotGranted = _err("PermissionNotGranted", "FAILED_PRECONDITION",
                            "etcdserver: permission is not granted to the role")
AuthNotEnabled = _err("AuthNotEnabled", "FAILED_PRECONDITION",
                      "etcdserver: authentication is not enabled")
InvalidAuthToken = _err("InvalidAuthToken", "UNAUTHENTICATED", "etcdserver: invalid auth token")
InvalidAuthMgmt = _err("InvalidAuthMgmt", "INVALID_ARGUMENT",
                       "etcdserver: invalid auth management")
AuthOldRevision = _err("AuthOldRevision", "INVALID_ARGUMENT",
                       "etcdserver: revision of auth store is old")
