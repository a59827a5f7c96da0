#!/usr/bin/env python3
"""fake_kubelet.py - a tiny kwok-like "kubelet" for a real kube-apiserver.

One process simulates any number of nodes (no containers run anywhere):
  * creates Node objects (capacity/allocatable incl. extended resources such as
    nvidia.com/gpu, labels, taints, Ready condition) from --count and/or a JSON
    spec, and adopts any Node that carries the label  k8s-test-cluster/simulated=true
  * with --heartbeat S, renews each node's Lease in kube-node-lease every S
    seconds, as a kubelet does, so that the controller-manager keeps the nodes
    Ready (S must be well below its --node-monitor-grace-period)
  * for every pod that the (real) kube-scheduler binds to one of those nodes it
    writes a kubelet-like status: phase Running, Ready conditions, podIP,
    containerStatuses running (init containers terminated/Completed), and posts
    kubelet-like events (Pulled/Created/Started)
  * when a pod on such a node is deleted gracefully (deletionTimestamp set) it
    finishes the deletion (grace period 0), as a kubelet does, so pods never
    hang in Terminating.

Pod IPs are handed out from a LOOPBACK range (default 127.16.0.0/12), so that
a hub that tries to connect to a pod IP never sends traffic off the machine.
(Endpoints objects reject loopback IPs, so Services selecting these pods get no
endpoints; use --pod-cidr to change.)

Without --heartbeat, the controller-manager needs a very long
--node-monitor-grace-period (up.sh uses 8760h when there are no real nodes).

Objects are handled as plain JSON dicts (no model deserialisation), which keeps
the CPU cost per pod low.
"""

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import logging
import os
import secrets
import sys
import time

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

MANAGED_LABEL = "k8s-test-cluster/simulated"
LEASE_NS = "kube-node-lease"
log = logging.getLogger("fake-kubelet")


def now():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_kv(s):
    out = {}
    for part in filter(None, (s or "").split(",")):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip()
    return out


async def raw(coro):
    """Await an API call made with _preload_content=False; return parsed JSON, raise on error."""
    r = await coro
    body = await r.read()
    if not 200 <= r.status <= 299:
        raise ApiException(status=r.status, reason=body.decode(errors="replace")[:300])
    return json.loads(body) if body else None


class FakeKubelet:
    def __init__(self, args):
        self.args = args
        self.managed = {}  # node name -> InternalIP
        self.node_uids = {}  # node name -> uid (owner of its Lease)
        self.done_uids = set()  # pods already set Running
        self.deleting = set()
        self._ips = ipaddress.ip_network(args.pod_cidr).hosts()
        self._node_ips = ipaddress.ip_network(args.node_cidr).hosts()
        self.queue = asyncio.Queue()
        self.stats = {"running": 0, "deleted": 0, "errors": 0}

    # ------------------------------------------------------------------ nodes
    def node_body(self, name, group):
        cap = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
        cap.update(group.get("capacity", {}))
        alloc = dict(cap)
        alloc.update(group.get("allocatable", {}))
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "fake",
            MANAGED_LABEL: "true",
        }
        labels.update(group.get("labels", {}))
        ip = str(next(self._node_ips))
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"taints": group.get("taints", [])},
            "status": self.node_status(ip, cap, alloc, now()),
        }, ip

    @staticmethod
    def node_status(ip, cap, alloc, t):
        conds = [
            ("Ready", "True", "KubeletReady", "fake kubelet is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
            ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
            ("NetworkUnavailable", "False", "RouteCreated", ""),
        ]
        return {
            "capacity": cap,
            "allocatable": alloc,
            "addresses": [{"type": "InternalIP", "address": ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "fake://0",
                "kernelVersion": "fake",
                "osImage": "fake",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
            "conditions": [
                {"type": ty, "status": st, "reason": r, "message": m, "lastHeartbeatTime": t, "lastTransitionTime": t}
                for ty, st, r, m in conds
            ],
        }

    async def create_nodes(self, v1):
        groups = []
        if self.args.nodes_json:
            with open(self.args.nodes_json) as f:
                groups = json.load(f)
        if self.args.count:
            groups.append(
                {
                    "prefix": self.args.prefix,
                    "count": self.args.count,
                    "capacity": parse_kv(self.args.capacity),
                    "labels": parse_kv(self.args.labels),
                }
            )
        sem = asyncio.Semaphore(self.args.concurrency)

        async def one(name, group):
            body, ip = self.node_body(name, group)
            async with sem:
                try:
                    node = await raw(v1.create_node(body, _preload_content=False))
                except ApiException as e:
                    if e.status != 409:
                        raise
                    node = await raw(v1.patch_node_status(name, {"status": body["status"]}, _preload_content=False))
            self.node_uids[name] = node["metadata"]["uid"]
            self.managed[name] = ip

        tasks = []
        for g in groups:
            names = g.get("names") or [f"{g['prefix']}{i}" for i in range(g["count"])]
            tasks += [one(n, g) for n in names]
        t0 = time.time()
        await asyncio.gather(*tasks)
        if tasks:
            log.info("created/updated %d nodes in %.1fs", len(tasks), time.time() - t0)

    async def list_watch(self, v1, list_fn, handle, **kw):
        """list + watch with plain dicts; relist on any error (e.g. 410 Gone)."""
        while True:
            try:
                lst = await raw(list_fn(_preload_content=False, **kw))
                for o in lst["items"]:
                    await handle("ADDED", o)
                w = watch.Watch(return_type="object")  # no model deserialisation
                async with w.stream(
                    list_fn,
                    resource_version=lst["metadata"]["resourceVersion"],
                    timeout_seconds=300,
                    allow_watch_bookmarks=True,
                    **kw,
                ) as stream:
                    async for ev in stream:
                        if ev["type"] != "BOOKMARK":
                            await handle(ev["type"], ev["object"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("%s watch: %s; relisting", list_fn.__name__, e)
                await asyncio.sleep(1)

    async def on_node(self, v1, typ, node):
        """Adopt any node labelled MANAGED_LABEL=true (e.g. created by a test)."""
        name = node["metadata"]["name"]
        if typ == "DELETED":
            self.managed.pop(name, None)
            self.node_uids.pop(name, None)
            return
        self.node_uids[name] = node["metadata"]["uid"]
        st = node.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
        if name in self.managed and ready:
            return
        ip = self.managed.get(name) or str(next(self._node_ips))
        self.managed[name] = ip
        if not ready:
            cap = st.get("capacity") or {"cpu": "32", "memory": "256Gi", "pods": "110"}
            alloc = st.get("allocatable") or cap
            await raw(
                v1.patch_node_status(name, {"status": self.node_status(ip, cap, alloc, now())}, _preload_content=False)
            )
            log.info("adopted node %s", name)

    # ------------------------------------------------------------------ pods
    def pod_status(self, pod):
        t = now()
        ip = str(next(self._ips))

        def cstat(c, state, ready):
            return {
                "name": c["name"],
                "ready": ready,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": f"fake://{c.get('image', '')}",
                "containerID": "containerd://" + secrets.token_hex(32),
                "state": state,
            }

        cs = [dict(cstat(c, {"running": {"startedAt": t}}, True), started=True) for c in pod["spec"]["containers"]]
        ics = [
            cstat(c, {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t}}, True)
            for c in pod["spec"].get("initContainers") or []
        ]
        conds = [
            {"type": ty, "status": "True", "lastProbeTime": None, "lastTransitionTime": t}
            for ty in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ]
        st = {
            "phase": "Running",
            "conditions": conds,
            "hostIP": self.managed.get(pod["spec"]["nodeName"], "127.0.0.1"),
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": t,
            "containerStatuses": cs,
        }
        if ics:
            st["initContainerStatuses"] = ics
        return {"status": st}

    async def emit_events(self, v1, pod):
        """kubelet-like events (KubeSpawner shows them as spawn progress)."""
        t = now()
        md = pod["metadata"]
        ns, node = md["namespace"], pod["spec"]["nodeName"]
        for c in pod["spec"]["containers"]:
            for reason, msg in (
                ("Pulled", f'Container image "{c.get("image")}" already present on machine'),
                ("Created", f"Created container {c['name']}"),
                ("Started", f"Started container {c['name']}"),
            ):
                await raw(
                    v1.create_namespaced_event(
                        ns,
                        {
                            "metadata": {"generateName": f"{md['name']}.", "namespace": ns},
                            "involvedObject": {
                                "kind": "Pod",
                                "apiVersion": "v1",
                                "namespace": ns,
                                "name": md["name"],
                                "uid": md["uid"],
                                "fieldPath": f"spec.containers{{{c['name']}}}",
                            },
                            "reason": reason,
                            "message": msg,
                            "type": "Normal",
                            "source": {"component": "kubelet", "host": node},
                            "firstTimestamp": t,
                            "lastTimestamp": t,
                            "count": 1,
                        },
                        _preload_content=False,
                    )
                )

    async def on_pod(self, typ, pod):
        md = pod["metadata"]
        uid = md["uid"]
        if typ == "DELETED":
            self.done_uids.discard(uid)
            self.deleting.discard(uid)
            return
        if pod["spec"].get("nodeName") not in self.managed:
            return
        if md.get("deletionTimestamp"):
            if uid not in self.deleting:
                self.deleting.add(uid)
                self.queue.put_nowait(("delete", pod))
        elif uid not in self.done_uids and (pod.get("status") or {}).get("phase") in (None, "Pending"):
            self.done_uids.add(uid)
            self.queue.put_nowait(("run", pod))

    async def worker(self, v1):
        while True:
            kind, pod = await self.queue.get()
            md = pod["metadata"]
            ns, name = md["namespace"], md["name"]
            try:
                if kind == "run":
                    if self.args.start_delay:
                        await asyncio.sleep(self.args.start_delay)
                    await raw(v1.patch_namespaced_pod_status(name, ns, self.pod_status(pod), _preload_content=False))
                    self.stats["running"] += 1
                    if self.args.events:
                        await self.emit_events(v1, pod)
                else:
                    await raw(
                        v1.delete_namespaced_pod(
                            name,
                            ns,
                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": md["uid"]}},
                            _preload_content=False,
                        )
                    )
                    self.stats["deleted"] += 1
            except ApiException as e:
                if e.status not in (404, 409):
                    self.stats["errors"] += 1
                    log.warning("%s %s/%s: %s %s", kind, ns, name, e.status, e.reason)
                if kind == "delete":
                    self.deleting.discard(md["uid"])
            except Exception as e:
                self.stats["errors"] += 1
                log.warning("%s %s/%s: %r", kind, ns, name, e)
            finally:
                self.queue.task_done()

    async def heartbeat(self, coord):
        """Renew one Lease per node in kube-node-lease (created on first use), like a kubelet."""
        sem = asyncio.Semaphore(self.args.concurrency)
        duration = max(1, int(self.args.heartbeat * 4))

        async def renew(name):
            t = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            async with sem:
                try:
                    await raw(
                        coord.patch_namespaced_lease(name, LEASE_NS, {"spec": {"renewTime": t}}, _preload_content=False)
                    )
                except ApiException as e:
                    if e.status != 404:
                        raise
                    md = {"name": name, "namespace": LEASE_NS}
                    if name in self.node_uids:  # garbage-collected with its Node
                        md["ownerReferences"] = [
                            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.node_uids[name]}
                        ]
                    await raw(
                        coord.create_namespaced_lease(
                            LEASE_NS,
                            {
                                "metadata": md,
                                "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": t},
                            },
                            _preload_content=False,
                        )
                    )

        while True:
            t0 = time.monotonic()
            res = await asyncio.gather(*(renew(n) for n in list(self.managed)), return_exceptions=True)
            errs = [r for r in res if isinstance(r, Exception)]
            if errs:
                self.stats["errors"] += len(errs)
                log.warning("lease renewal: %d errors, e.g. %r", len(errs), errs[0])
            await asyncio.sleep(max(0.1, self.args.heartbeat - (time.monotonic() - t0)))

    async def report(self):
        last = None
        while True:
            await asyncio.sleep(30)
            cur = (len(self.managed), dict(self.stats), self.queue.qsize())
            if cur != last:
                log.info("nodes=%d %s queue=%d", *cur)
                last = cur

    async def main(self):
        await config.load_kube_config(config_file=self.args.kubeconfig)
        cfg = client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = max(self.args.concurrency * 2, 32)
        async with client.ApiClient(cfg) as api:
            v1 = client.CoreV1Api(api)
            await self.create_nodes(v1)
            if self.args.ready_file:
                with open(self.args.ready_file, "w") as f:
                    f.write(str(len(self.managed)))

            async def on_node(typ, o):
                await self.on_node(v1, typ, o)

            tasks = [
                asyncio.create_task(self.list_watch(v1, v1.list_node, on_node, label_selector=f"{MANAGED_LABEL}=true")),
                asyncio.create_task(
                    self.list_watch(v1, v1.list_pod_for_all_namespaces, self.on_pod, field_selector="spec.nodeName!=")
                ),
                asyncio.create_task(self.report()),
            ]
            tasks += [asyncio.create_task(self.worker(v1)) for _ in range(self.args.concurrency)]
            if self.args.heartbeat > 0:
                tasks.append(asyncio.create_task(self.heartbeat(client.CoordinationV1Api(api))))
            await asyncio.gather(*tasks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    ap.add_argument(
        "--nodes-json", help='JSON list of {"prefix","count"|"names","capacity","allocatable","labels","taints"}'
    )
    ap.add_argument("--count", type=int, default=0, help="extra uniform nodes")
    ap.add_argument("--prefix", default="sim-node-")
    ap.add_argument("--capacity", default="cpu=32,memory=256Gi,pods=110,nvidia.com/gpu=8")
    ap.add_argument("--labels", default="")
    ap.add_argument("--pod-cidr", default="127.16.0.0/12")
    ap.add_argument("--node-cidr", default="127.8.0.0/16")
    ap.add_argument(
        "--heartbeat", type=float, default=0.0, help="renew each node's Lease every this many seconds (0: never)"
    )
    ap.add_argument("--start-delay", type=float, default=0.0, help="seconds before a bound pod turns Running")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--ready-file")
    ap.add_argument(
        "--no-events", dest="events", action="store_false", help="do not post Pulled/Created/Started events for pods"
    )
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.v else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stdout,
    )
    try:
        asyncio.run(FakeKubelet(args).main())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
