"""Specs: the pydantic models of every kind, their loading from YAML, and CRD generation.

Stage: *spec sources* (docs/ARCHITECTURE.md). One model per kind is the single source of
truth: it validates the spec files ``driftmend validate`` and ``driftmend run`` load, and
generates the CRDs in ``crds/``. Loading never raises for bad input: every problem becomes a
``SpecIssue`` naming the file, the document (index and kind/name), the field path and the fix.

The modules, named after what they hold:

- ``fields``: the base model and the field types every kind shares (durations, sizes, names);
- ``metadata``, ``container``, ``datastores``, ``policy``: the models, kind by kind;
- ``documents``: the document union, ``Loaded`` and ``LoadResult``;
- ``yaml_loader``: the hardened YAML decoding;
- ``issues``: ``SpecIssue`` and pydantic's errors reworded as fixes;
- ``loading``: ``load_paths``, the one loader;
- ``crds``: the CustomResourceDefinitions.

Every name importers used from the single ``driftmend/spec.py`` this package replaces is
re-exported here, so ``from driftmend.spec import Container`` keeps working.
"""

from driftmend.spec.container import (
    ComposeService,
    ContainerSpec,
    DockerHealthcheck,
    DockerSpec,
    EnvValue,
    EnvVarSource,
    HealthProbe,
    HttpProbe,
    KubernetesSpec,
    Limits,
    ProcessSpec,
)
from driftmend.spec.crds import crd, crd_schema, crds_yaml
from driftmend.spec.datastores import PostgresDatabaseSpec, RedisCacheSpec
from driftmend.spec.documents import (
    KINDS,
    Container,
    Document,
    HealingPolicy,
    Loaded,
    LoadResult,
    PostgresDatabase,
    RedisCache,
    Resource,
)
from driftmend.spec.fields import (
    API_VERSION,
    DNS_NAME,
    ENV_NAME,
    GROUP,
    VERSION,
    ByteSize,
    Duration,
    FieldError,
    Model,
    PositiveDuration,
)
from driftmend.spec.issues import SpecIssue, describe_errors
from driftmend.spec.loading import (
    DocumentCheck,
    check_documents,
    load_paths,
    load_text,
    parse_document,
    spec_files,
)
from driftmend.spec.metadata import Metadata, RuntimeRef, SecretRef
from driftmend.spec.policy import (
    OPERATORS,
    Attempts,
    Backoff,
    Condition,
    Escalate,
    HealingPolicySpec,
    Operator,
    ResourceKind,
    Rule,
    Selector,
    ToolStep,
    Verify,
)
from driftmend.spec.yaml_loader import MAX_DEPTH, MAX_VALUES

__all__ = [
    "API_VERSION",
    "DNS_NAME",
    "ENV_NAME",
    "GROUP",
    "KINDS",
    "MAX_DEPTH",
    "MAX_VALUES",
    "OPERATORS",
    "VERSION",
    "Attempts",
    "Backoff",
    "ByteSize",
    "ComposeService",
    "Condition",
    "Container",
    "ContainerSpec",
    "DockerHealthcheck",
    "DockerSpec",
    "Document",
    "DocumentCheck",
    "Duration",
    "EnvValue",
    "EnvVarSource",
    "Escalate",
    "FieldError",
    "HealingPolicy",
    "HealingPolicySpec",
    "HealthProbe",
    "HttpProbe",
    "KubernetesSpec",
    "Limits",
    "LoadResult",
    "Loaded",
    "Metadata",
    "Model",
    "Operator",
    "PositiveDuration",
    "PostgresDatabase",
    "PostgresDatabaseSpec",
    "ProcessSpec",
    "RedisCache",
    "RedisCacheSpec",
    "Resource",
    "ResourceKind",
    "Rule",
    "RuntimeRef",
    "SecretRef",
    "Selector",
    "SpecIssue",
    "ToolStep",
    "Verify",
    "check_documents",
    "crd",
    "crd_schema",
    "crds_yaml",
    "describe_errors",
    "load_paths",
    "load_text",
    "parse_document",
    "spec_files",
]
