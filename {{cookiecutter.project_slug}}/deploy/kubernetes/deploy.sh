#!/bin/sh
# Deploy one image of {{ cookiecutter.project_slug }} to the cluster kubectl points at, the same way by hand and from CI:
#
#   deploy/kubernetes/deploy.sh OVERLAY_DIR REGISTRY/IMAGE@sha256:DIGEST
#
#   1. pin the overlay to the image digest (kustomize edit set image);
#   2. apply the access objects (ServiceAccount, NetworkPolicies), the ConfigMap and the migrate
#      Job, which replaces the previous one; wait until the migrations have run;
#   3. apply everything else and wait for web, worker and clock to roll out.
#
# If the migrations fail, nothing else changes: the running release keeps serving. If a
# rollout fails, undo it (docs/deploying.md): `kubectl rollout undo deployment/NAME`.
# Needs kubectl (1.30 or newer) and kustomize on PATH; the Secret must exist already.
set -eu

usage() {
  echo "usage: $0 OVERLAY_DIR IMAGE@sha256:DIGEST" >&2
  exit 64
}
[ "$#" -eq 2 ] || usage
overlay=$1
image=$2
case "$image" in
  *@sha256:*) ;;
  *) echo "deploy.sh: give the image by digest (NAME@sha256:...), not by tag: $image" >&2; exit 64 ;;
esac
[ -f "$overlay/kustomization.yaml" ] || { echo "deploy.sh: no kustomization.yaml in $overlay" >&2; exit 66; }

timeout=${DEPLOY_TIMEOUT:-10m}
release='app.kubernetes.io/component=release'
first='app.kubernetes.io/component in (access,config,release)'
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT

echo "==> Pinning $overlay to $image"
(cd "$overlay" && kustomize edit set image "{{ cookiecutter.project_slug }}=$image")
kustomize build "$overlay" > "$rendered"

echo "==> Migrations (the release process type)"
# A Job's pod template is immutable: the previous release's Job goes first.
kubectl delete --filename "$rendered" --selector "$release" --ignore-not-found --wait=true
kubectl apply --filename "$rendered" --selector "$first"
# `..` finds the fields whether kubectl prints the one Job or a list holding it.
where=$(kubectl get --filename "$rendered" --selector "$release" --output 'jsonpath={..metadata.namespace}')
job=$(kubectl get --filename "$rendered" --selector "$release" --output 'jsonpath={..metadata.name}')
while :; do
  # activeDeadlineSeconds in job-migrate.yaml bounds this loop: the Job fails by then.
  state=$(kubectl get --namespace "$where" "job/$job" \
    --output 'jsonpath={.status.conditions[?(@.status=="True")].type}')
  case " $state " in
    *" Complete "*) break ;;
    *" Failed "*)
      kubectl logs --namespace "$where" "job/$job" --all-containers --tail=100 >&2 || true
      echo "deploy.sh: the migrations failed; nothing else was changed" >&2
      exit 1
      ;;
  esac
  sleep 5
done

echo "==> Rolling out web, worker and clock"
kubectl apply --filename "$rendered"
kubectl get --filename "$rendered" \
  --output 'jsonpath={range .items[?(@.kind=="Deployment")]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' |
  while read -r namespace name; do
    kubectl rollout status --namespace "$namespace" "deployment/$name" --timeout "$timeout"
  done
echo "==> Deployed $image"
