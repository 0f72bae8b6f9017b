//! What a `/binding` call's result says about where the Pod is. Only a 201
//! says "bound where asked" and only a 404 says "gone"; everything else (a
//! timeout, a cut connection, a 5xx or 504 whose write may still land, or a
//! 409/422 that leaves an earlier attempt's outcome open) is settled by
//! reading the Pod back. Pure, so each case is unit-tested.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// The apiserver's answer to one `/binding` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindOutcome {
    /// 201: bound to the Node asked for.
    Bound,
    /// 404: the Pod is gone.
    Gone,
    /// 409 (already assigned, being deleted) or 422: this call did not bind,
    /// but an earlier attempt of ours may have.
    Rejected,
    /// No definite answer: the binding may or may not have landed.
    Unknown,
}

pub fn classify<T>(result: &Result<T, kube::Error>) -> BindOutcome {
    match result {
        Ok(_) => BindOutcome::Bound,
        Err(kube::Error::Api(s)) if s.code == 404 => BindOutcome::Gone,
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => BindOutcome::Rejected,
        Err(_) => BindOutcome::Unknown,
    }
}

/// Where the apiserver says the Pod is, after a binding or a read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Bound to this Node (by us or an earlier attempt): the allocator follows it.
    BoundTo(String),
    /// Gone, or replaced by a namesake: its room is free.
    Gone,
    /// Unbound and being deleted: its room is held until the watch sees it go.
    Deleting,
    /// Still unbound, or the read itself failed: keep the room and bind again
    /// to the same Node, so a late landing of an earlier attempt fits.
    Unresolved,
}

/// The verdict of `GET` on the Pod whose uid is `uid`.
pub fn read_back(uid: &str, got: Result<Option<Pod>, kube::Error>) -> Verdict {
    let pod = match got {
        Ok(Some(pod)) => pod,
        Ok(None) => return Verdict::Gone,
        Err(_) => return Verdict::Unresolved,
    };
    if pod.uid().as_deref() != Some(uid) {
        return Verdict::Gone;
    }
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        return Verdict::BoundTo(node);
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Verdict::Deleting;
    }
    Verdict::Unresolved
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;
    use kube::core::Status;

    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> Result<(), kube::Error> {
        Err(kube::Error::Api(Status::failure(message, reason).with_code(code).boxed()))
    }

    fn pod(uid: &str, node: Option<&str>, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                deletion_timestamp: deleting.then(|| Time(Default::default())),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: node.map(Into::into), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn only_201_and_404_are_definite() {
        assert_eq!(classify(&Ok::<_, kube::Error>(())), BindOutcome::Bound);
        assert_eq!(classify(&api(404, "NotFound", "pods \"p\" not found")), BindOutcome::Gone);
        let assigned = api(
            409,
            "Conflict",
            "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\"",
        );
        assert_eq!(classify(&assigned), BindOutcome::Rejected);
        assert_eq!(classify(&api(422, "Invalid", "invalid")), BindOutcome::Rejected);
        for (code, reason) in
            [(500, "InternalError"), (503, "ServiceUnavailable"), (504, "Timeout"), (429, "TooManyRequests")]
        {
            assert_eq!(classify(&api(code, reason, "")), BindOutcome::Unknown, "{code}");
        }
        let cut = Err::<(), _>(kube::Error::Service("connection reset by peer".into()));
        assert_eq!(classify(&cut), BindOutcome::Unknown);
    }

    #[test]
    fn a_read_back_follows_the_apiserver() {
        assert_eq!(read_back("u1", Ok(Some(pod("u1", Some("n2"), false)))), Verdict::BoundTo("n2".into()));
        assert_eq!(read_back("u1", Ok(None)), Verdict::Gone);
        assert_eq!(read_back("u1", Ok(Some(pod("u2", Some("n1"), false)))), Verdict::Gone, "a namesake");
        assert_eq!(read_back("u1", Ok(Some(pod("u1", None, true)))), Verdict::Deleting);
        assert_eq!(read_back("u1", Ok(Some(pod("u1", Some("n1"), true)))), Verdict::BoundTo("n1".into()));
        assert_eq!(read_back("u1", Ok(Some(pod("u1", None, false)))), Verdict::Unresolved);
        let timeout = Err(kube::Error::Api(Status::failure("timeout", "Timeout").with_code(504).boxed()));
        assert_eq!(read_back("u1", timeout), Verdict::Unresolved);
    }
}
