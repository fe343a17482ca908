#!/usr/bin/env python3
"""Writes sandbox/crds/deckhouse.yaml and sandbox/crds/variants/mpo-v1alpha1-only.yaml:
the Deckhouse CRDs as they ship (docs/deckhouse-real.md §2). Run after editing this file."""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
LABELS = {
    "heritage": "deckhouse",
    "app.kubernetes.io/name": "deckhouse",
    "app.kubernetes.io/part-of": "deckhouse",
}
BACKUP = {**LABELS, "backup.deckhouse.io/cluster-config": "true"}
S = {"type": "string"}
B = {"type": "boolean"}
I = {"type": "integer"}
DT = {"type": "string", "format": "date-time"}


def obj(props, required=None, **extra):
    out = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    out.update(extra)
    return out


def col(name, jsonpath, kind="string", priority=None, fmt=None):
    c = {"name": name, "type": kind, "jsonPath": jsonpath}
    if priority:
        c["priority"] = priority
    if fmt:
        c["format"] = fmt
    return c


def version(name, served, storage, schema, columns, deprecated=False, status=True):
    v = {"name": name, "served": served, "storage": storage}
    if deprecated:
        v["deprecated"] = True
    if status:
        v["subresources"] = {"status": {}}
    v["schema"] = {"openAPIV3Schema": schema}
    v["additionalPrinterColumns"] = columns
    return v


def crd(plural, kind, versions, labels=LABELS, short=None):
    names = {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List"}
    if short:
        names["shortNames"] = [short]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.deckhouse.io", "labels": labels},
        "spec": {"group": "deckhouse.io", "scope": "Cluster", "names": names, "versions": versions},
    }


# --- ModulePullOverride: crd module-pull-override.yaml@0012036b ---------------------
MPO_STATUS = obj({"message": S, "updatedAt": S, "imageDigest": S, "weight": I})
SCAN = {"type": "string", "default": "15s", "pattern": r"^(\d+h)?(\d+m)?(\d+s)?$"}
ROLLBACK = {"type": "boolean", "default": False}


def mpo_schema(with_source):
    props = {"imageTag": S, "scanInterval": SCAN, "rollback": ROLLBACK}
    required = ["imageTag"]
    if with_source:
        props = {"source": S, **props}
        required = ["source", "imageTag"]
    return obj({"spec": obj(props, required), "status": MPO_STATUS}, ["spec"])


UPDATED = col("Updated", ".status.updatedAt", "date", fmt="date-time")
MPO_V1_COLUMNS = [UPDATED, col("msg", ".status.message")]
MPO_V2_COLUMNS = [UPDATED, col("Message", ".status.message"), col("Rollback", ".spec.rollback")]


def mpo(gen_a):
    if gen_a:
        versions = [version("v1alpha1", True, True, mpo_schema(True), MPO_V1_COLUMNS)]
    else:
        versions = [
            version("v1alpha1", False, False, mpo_schema(True), MPO_V1_COLUMNS, deprecated=True),
            version("v1alpha2", True, True, mpo_schema(False), MPO_V2_COLUMNS),
        ]
    return crd("modulepulloverrides", "ModulePullOverride", versions, short="mpo")


# --- Module: crd module.yaml@05af09cc -------------------------------------------------
STRLIST = {"type": "array", "items": S}
PROPERTIES = obj({
    "weight": I,
    "stage": S,
    "source": S,
    "releaseChannel": S,
    "version": S,
    "namespace": S,
    "subsystems": STRLIST,
    "exclusiveGroup": S,
    "updatePolicy": S,
    "critical": B,
    "availableSources": STRLIST,
    "requirements": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"bootstrapped": S, "deckhouse": S, "kubernetes": S,
                                    "modules": {"type": "object", "additionalProperties": S}}},
    "disableOptions": obj({"confirmation": B, "message": S,
                           "messages": obj({"en": S, "ru": S})}),
    "accessibility": obj({"editions": {"type": "object", "additionalProperties": obj(
        {"available": B, "enabledInBundles": STRLIST})}}),
})
PHASES = ["Unavailable", "Available", "Downloading", "DownloadingError", "Reconciling",
          "Installing", "HooksDisabled", "WaitSyncTasks", "Downloaded", "Conflict", "Ready", "Error"]
CONDITION = obj({"type": S, "status": S, "reason": S, "message": S,
                 "lastProbeTime": DT, "lastTransitionTime": DT})
MODULE_STATUS = obj({
    "phase": {"type": "string", "enum": PHASES},
    "hooksState": S,
    "conditions": {"type": "array", "items": CONDITION},
})
MODULE_SCHEMA = obj({
    "properties": PROPERTIES,
    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "status": MODULE_STATUS,
})
# The real column reads EnabledByModuleManager; the sandbox's module manager writes the
# condition the MPO controller checks (EnabledByModuleConfig), hiding PR #20763's case (§2).
ENABLED = "EnabledByModuleConfig"
MODULE_COLUMNS = [
    col("Weight", ".properties.weight", "integer", priority=1),
    col("Stage", ".properties.stage"),
    col("Release channel", ".properties.releaseChannel", priority=1),
    col("Source", ".properties.source"),
    col("Version", ".properties.version", priority=1),
    col("Phase", ".status.phase"),
    col("Enabled", f".status.conditions[?(@.type=='{ENABLED}')].status"),
    col("Disabled Message", f".status.conditions[?(@.type=='{ENABLED}')].message", priority=1),
    col("Ready", ".status.conditions[?(@.type=='IsReady')].status"),
]
MODULE = crd("modules", "Module", [
    version("v1alpha1", True, True, MODULE_SCHEMA, MODULE_COLUMNS),
    version("v1beta1", False, False, MODULE_SCHEMA, MODULE_COLUMNS),
])

# --- ModuleSource: crd module-source.yaml@04419940 --------------------------------------
SOURCE_SCHEMA = obj({
    "spec": obj({
        "registry": obj({
            "scheme": {"type": "string", "enum": ["HTTP", "HTTPS"], "default": "HTTPS"},
            "repo": S, "dockerCfg": S, "ca": S,
        }, ["repo"]),
        "releaseChannel": {"type": "string", "description": "Deprecated."},
    }, ["registry"]),
    "status": obj({
        "syncTime": DT,
        "modulesCount": I,
        "modules": {"type": "array", "items": obj({
            "name": S, "version": S, "checksum": S, "pullError": S, "error": S,
            "policy": S, "overridden": B})},
        "phase": {"type": "string", "enum": ["Active", "Terminating"]},
        "message": S,
    }),
}, ["spec"])
SOURCE = crd("modulesources", "ModuleSource", [version("v1alpha1", True, True, SOURCE_SCHEMA, [
    col("count", ".status.modulesCount", "integer"),
    col("status", ".status.phase"),
    col("sync", ".status.syncTime", "date", fmt="date-time"),
    col("msg", ".status.message"),
])], labels=BACKUP, short="ms")

# --- ModuleConfig: crd module-config.yaml@12b3a5b7 --------------------------------------
CONFIG_SCHEMA = obj({
    "spec": obj({
        "enabled": B,
        "maintenance": {"type": "string", "enum": ["NoResourceReconciliation"]},
        "version": {"type": "number"},
        "settings": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "updatePolicy": S,
        "source": S,
    }),
    "status": obj({"version": S, "message": S}),
}, ["spec"])
CONFIG = crd("moduleconfigs", "ModuleConfig", [version("v1alpha1", True, True, CONFIG_SCHEMA, [
    col("Enabled", ".spec.enabled", "boolean"),
    col("UpdatePolicy", ".spec.updatePolicy", priority=1),
    col("Source", ".spec.source", priority=1),
    col("Version", ".status.version"),
    col("Age", ".metadata.creationTimestamp", "date"),
    col("Message", ".status.message"),
])], labels=BACKUP, short="mc")

# --- ModuleRelease: crd module-release.yaml@006290ce ------------------------------------
RELEASE_SCHEMA = obj({
    "spec": obj({
        "moduleName": S, "version": S, "weight": I, "applyAfter": DT,
        "requirements": {"type": "object", "additionalProperties": S},
        "updateConstraints": obj({"versions": {"type": "array", "items": obj(
            {"from": S, "to": S}, ["from", "to"])}}),
        "changelog": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }, ["moduleName", "version"]),
    "status": obj({
        "phase": {"type": "string", "enum": ["Pending", "Deployed", "Superseded", "Suspended",
                                             "Skipped", "Terminating"]},
        "message": S, "transitionTime": DT, "approved": B, "size": I, "pullDuration": S,
    }),
})
RELEASE = crd("modulereleases", "ModuleRelease", [version("v1alpha1", True, True, RELEASE_SCHEMA, [
    col("phase", ".status.phase"),
    col("update policy", ".metadata.labels.modules\\.deckhouse\\.io/update-policy"),
    col("transitionTime", ".status.transitionTime", "date"),
    col("message", ".status.message"),
])], short="mr")

# --- ModuleUpdatePolicy: crd module-update-policy.yaml@1058178c -------------------------
WINDOW = obj({
    "from": {"type": "string", "pattern": r"^(?:\d|[01]\d|2[0-3]):[0-5]\d$"},
    "to": {"type": "string", "pattern": r"^(?:\d|[01]\d|2[0-3]):[0-5]\d$"},
    "days": {"type": "array", "items": {"type": "string", "enum": [
        "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}},
}, ["from", "to"])
CHANNEL = {"type": "string", "default": "Stable",
           "enum": ["Alpha", "Beta", "EarlyAccess", "Stable", "RockSolid", "Lts"]}


def mup_schema(modes, default, with_selector):
    spec = {
        "releaseChannel": CHANNEL,
        "update": obj({"mode": {"type": "string", "enum": modes, "default": default},
                       "windows": {"type": "array", "items": WINDOW}}),
    }
    required = ["update"]
    if with_selector:
        spec["moduleReleaseSelector"] = obj({"labelSelector": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}, ["labelSelector"])
        required.append("moduleReleaseSelector")
    return obj({"spec": obj(spec, required),
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}})


MUP_COLUMNS = [
    col("release channel", ".spec.releaseChannel"),
    col("update mode", ".spec.update.mode"),
    col("update windows", ".spec.update.windows", priority=1),
]
MUP = crd("moduleupdatepolicies", "ModuleUpdatePolicy", [
    version("v1alpha1", True, False, mup_schema(["Auto", "Manual", "AutoPatch", "Ignore"],
                                                "AutoPatch", True), MUP_COLUMNS, deprecated=True),
    version("v1alpha2", True, True, mup_schema(["Auto", "Manual", "AutoPatch"], "Auto", False),
            MUP_COLUMNS),
], short="mup")


def write(path, header, docs):
    text = header + "".join("---\n" + json.dumps(d, indent=1) + "\n" for d in docs)
    (ROOT / path).write_text(text)


write("sandbox/crds/deckhouse.yaml",
      "# Deckhouse CRDs as they ship (docs/deckhouse-real.md §2); generated by\n"
      "# sandbox/scripts/gen-crds.py, edit that instead.\n",
      [mpo(False), MODULE, SOURCE, CONFIG, MUP, RELEASE])
write("sandbox/crds/variants/mpo-v1alpha1-only.yaml",
      "# Generation A (docs/deckhouse-real.md §1, §2): ModulePullOverride v1alpha1 only,\n"
      "# served and stored. Generated by sandbox/scripts/gen-crds.py.\n",
      [mpo(True)])
