"""The kubernetes API (the `kubernetes` client, imported lazily: ~300 ms): read and annotate the custom
resources of Argo CD and Flux.

Access comes from a kubeconfig (`--kubeconfig`, else KUBECONFIG, else ~/.kube/config) and a context
(`--kube-context`, e.g. the GitLab agent's CI tunnel `path/to/agent-project:agent-name`), or from the
pod's service account when running in a cluster. Every ApiException, urllib3 or ssl error is converted
here into our errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gitops_ci import logs
from gitops_ci.deadline import AnswerTooSlow, answer_within
from gitops_ci.errors import (
    AuthError,
    ConfigurationError,
    OperationalError,
    RetryableError,
    SyncError,
    root_cause,
)
from gitops_ci.naming import check_ca_file

log = logs.get_logger(__name__)
T = TypeVar("T")
REQUEST_TIMEOUT = 30.0
MAX_ANSWER_BYTES = 16 << 20  # an Application with its resource tree is a few hundred KiB
MERGE_PATCH = "application/merge-patch+json"


class _AnswerTooLarge(Exception):
    pass


@dataclass(frozen=True)
class CustomKind:
    group: str
    version: str
    plural: str
    kind: str

    def describe(self, namespace: str, name: str) -> str:
        return f"{self.kind} {namespace}/{name}"


APPLICATION = CustomKind("argoproj.io", "v1alpha1", "applications", "Application")
KUSTOMIZATION = CustomKind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization")
GIT_REPOSITORY = CustomKind("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository")
SOURCE_KINDS = {"GitRepository": GIT_REPOSITORY}


@dataclass(frozen=True, kw_only=True)
class KubeSettings:
    kubeconfig: str | None = None
    context: str | None = None
    ca_file: str | None = None  # used only when the kubeconfig names no CA of its own
    request_timeout: float = REQUEST_TIMEOUT

    def __post_init__(self) -> None:
        if self.context is not None and (not self.context or logs.has_controls(self.context)):
            raise ConfigurationError(
                "--kube-context is empty or holds a line break or another control character: give a "
                "context's name from the kubeconfig"
            )
        check_ca_file(self.ca_file)

    def where(self) -> str:
        source = self.kubeconfig or _default_kubeconfig()
        return (f"kubeconfig {source}" if source else "the in-cluster service account") + (
            f", context {self.context}" if self.context else ""
        )


class KubeClient:
    """Custom objects through one ApiClient; never touches the kubernetes client's global default."""

    def __init__(self, settings: KubeSettings) -> None:
        self.settings = settings
        self._api: Any = None

    def get(self, kind: CustomKind, namespace: str, name: str, budget: float | None = None) -> dict[str, Any]:
        """The object; `budget` (seconds left to a caller's deadline) shortens the request timeout."""
        limit = self.settings.request_timeout
        timeout = limit if budget is None else max(1.0, min(limit, budget))
        return self._call(
            kind,
            namespace,
            name,
            "get",
            lambda api: api.get_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, name, _request_timeout=timeout
            ),
            timeout,
        )

    def annotate(self, kind: CustomKind, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        """A merge patch of metadata.annotations only: no resourceVersion, so no conflict to retry."""
        body = {"metadata": {"annotations": dict(annotations)}}
        self._call(
            kind,
            namespace,
            name,
            "patch",
            lambda api: api.patch_namespaced_custom_object(
                kind.group,
                kind.version,
                namespace,
                kind.plural,
                name,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=self.settings.request_timeout,
            ),
            self.settings.request_timeout,
        )

    def _call(
        self, kind: CustomKind, namespace: str, name: str, verb: str, call: Callable[[Any], T], timeout: float
    ) -> dict[str, Any]:
        """`call` on the API, answered in full within `timeout` (read timeouts let a trickle through)."""
        with self._errors(kind, namespace, name, verb, timeout):
            api = self._ready_api()
            with answer_within(timeout):
                result = call(api)
        return dict(result) if isinstance(result, Mapping) else {}

    def _ready_api(self) -> Any:
        """The API with fresh credentials. Loading the kubeconfig and refreshing an expired token run its
        credential plugin (`user.exec`, e.g. a cloud's token helper), which may hang: it is bounded like a
        request."""
        from kubernetes import config

        limit = self.settings.request_timeout
        try:
            with answer_within(limit):
                api = self._objects_api()
                api.api_client.configuration.auth_settings()
        except AnswerTooSlow:
            raise OperationalError(
                f"the credential plugin of {self.settings.where()} did not finish within {limit:g}s "
                "(--network-timeout); check that it can run without a terminal"
            ) from None
        except config.ConfigException as err:
            raise OperationalError(f"cannot get credentials from {self.settings.where()}: {err}") from None
        return api

    def _objects_api(self) -> Any:
        if self._api is None:
            from kubernetes import client

            self._api = client.CustomObjectsApi(self._api_client())
        return self._api

    def _api_client(self) -> Any:
        import urllib3
        import yaml
        from kubernetes import client, config

        configuration = client.Configuration()
        kubeconfig = self.settings.kubeconfig or _default_kubeconfig()
        try:
            if kubeconfig is not None:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig,
                    context=self.settings.context,
                    client_configuration=configuration,
                    persist_config=False,  # never rewrite the job's kubeconfig
                )
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                raise ConfigurationError(
                    "no cluster access: set KUBECONFIG or --kubeconfig (with the GitLab agent, KUBECONFIG is "
                    "set for you; pick its context with --kube-context path/to/agent-project:agent-name)"
                )
        except config.ConfigException as err:
            raise ConfigurationError(f"cannot use {self.settings.where()}: {err}") from None
        except (TypeError, AttributeError, ValueError, KeyError, IndexError, yaml.YAMLError) as err:
            # the loader indexes what the file holds without checking its shape; its message may quote the
            # file (a token), so only where it broke is said
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ConfigurationError(
                f"cannot use {self.settings.where()}: not a kubeconfig{where} ({type(err).__name__} while "
                "reading it); check the file, e.g. with `kubectl config view`"
            ) from None
        # A redirect comes back as an answer (an error below), never followed with the credentials.
        configuration.retries = urllib3.util.Retry(total=0, redirect=False)
        if not configuration.ssl_ca_cert and self.settings.ca_file:
            configuration.ssl_ca_cert = self.settings.ca_file
        for value in (configuration.api_key or {}).values():
            logs.register_secret(str(value).removeprefix("Bearer "))
        api = client.ApiClient(configuration)
        api.rest_client.request = _bounded(api.rest_client.request)  # type: ignore[method-assign]  # no hook
        return api

    @contextmanager
    def _errors(
        self, kind: CustomKind, namespace: str, name: str, verb: str, timeout: float
    ) -> Iterator[None]:
        import json
        import ssl

        import urllib3
        from kubernetes.client.exceptions import ApiException

        what = kind.describe(namespace, name)
        try:
            yield
        except AnswerTooSlow:
            raise RetryableError(
                f"kubernetes API did not answer in full within {timeout:g}s for {what}"
            ) from None
        except ApiException as err:
            raise _api_error(err, what, verb, self.settings) from None
        except (ssl.SSLError, urllib3.exceptions.SSLError) as err:
            raise _tls_error(what, err) from None
        except urllib3.exceptions.MaxRetryError as err:
            if isinstance(err.reason, (ssl.SSLError, urllib3.exceptions.SSLError)):
                raise _tls_error(what, err.reason) from None
            raise RetryableError(f"kubernetes API unreachable for {what} ({root_cause(err)})") from None
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as err:
            raise RetryableError(f"kubernetes API failed for {what} ({err})") from None
        except _AnswerTooLarge:
            raise OperationalError(
                f"the kubernetes API ({self.settings.where()}) answered {what} with more than "
                f"{MAX_ANSWER_BYTES >> 20} MiB: not a kube-apiserver's answer?"
            ) from None
        except json.JSONDecodeError as err:  # the client parses every answer as JSON
            raise RetryableError(
                f"the kubernetes API ({self.settings.where()}) answered {what} with something that is not "
                f"JSON ({err.msg}): a proxy's page, or not a kube-apiserver?"
            ) from err


def _bounded(request: Callable[..., Any]) -> Callable[..., Any]:
    """The REST client's `request` with its answer read here, up to MAX_ANSWER_BYTES: the client itself
    reads an answer whole, however large, within the time the deadline gives it."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        answer = request(*args, **kwargs)
        data = answer.response.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES:
            answer.response.close()
            raise _AnswerTooLarge
        answer.data = data  # what the client's RESTResponse.read() then returns
        return answer

    return bounded


def _default_kubeconfig() -> str | None:
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    home = Path(os.environ.get("HOME", "~")).expanduser() / ".kube" / "config"
    return str(home) if home.is_file() else None


def _tls_error(what: str, err: Exception) -> OperationalError:
    return OperationalError(
        f"TLS verification of the kubernetes API failed for {what} ({err}); the kubeconfig's "
        "certificate-authority (or --ca-file when it has none) must sign the API server's certificate"
    )


def _api_error(err: Any, what: str, verb: str, settings: KubeSettings) -> OperationalError:
    status = int(err.status or 0)
    try:
        message = logs.one_line(str(json.loads(err.body or "{}").get("message") or err.reason))
    except (ValueError, AttributeError):
        message = logs.one_line(str(err.reason))
    if status == 401:
        return AuthError(f"the kubernetes API rejected the credentials of {settings.where()} ({message})")
    if status == 403:
        return AuthError(
            f"{message}; grant `{verb}` on it to the identity of {settings.where()} (for the GitLab agent: "
            "ci_access with an impersonated service account that has this RBAC)"
        )
    if status == 404:
        return SyncError(f"{what} does not exist ({message}); check the namespace and name")
    if status in (409, 429) or status >= 500:
        return RetryableError(f"kubernetes API answered {status} for {what} ({message})")
    return SyncError(f"kubernetes API refused to {verb} {what} ({status}: {message})")
