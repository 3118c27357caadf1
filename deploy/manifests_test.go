// Package deploy_test checks the Kubernetes manifests in k8s/ the way a platform team's review
// and admission would: every overlay renders with kustomize, every object decodes strictly into
// its API type, every pod passes the `restricted` Pod Security Standard, and the objects agree
// with each other and with the services' own settings and shutdown timing.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/settings"
	exchangeworker "github.com/tandem-sync/tandem/services/exchange-worker"
	"github.com/tandem-sync/tandem/services/reconciler"
	salesforceworker "github.com/tandem-sync/tandem/services/salesforce-worker"
	"github.com/tandem-sync/tandem/services/scheduler"
	statusapi "github.com/tandem-sync/tandem/services/status-api"
)

// overlays are the kustomizations a platform team applies, with the Secrets each expects to
// exist already (created by hand or by a secret manager, never kept in git) and their keys.
var overlays = map[string]map[string][]string{
	"k8s/overlays/dev": {
		"tandem-seal":           {"TANDEM_SEAL_KEY"},
		"tandem-operator-token": {"token"},
		"status-api-tls":        {"tls.crt", "tls.key"},
	},
	"k8s/overlays/production": {
		"tandem-seal":           {"TANDEM_SEAL_KEY"},
		"tandem-operator-token": {"token"},
		"status-api-tls":        {"tls.crt", "tls.key"},
		"tandem-connections":    {"TANDEM_NATS_URL", "TANDEM_REDIS_URL"},
		"nats-auth":             {"NATS_PASSWORD"},
		"nats-tls":              {"tls.crt", "tls.key", "ca.crt"},
	},
}

// services maps each service binary to the flags it registers.
var services = map[string]func(*flag.FlagSet){
	"scheduler":         func(fs *flag.FlagSet) { new(scheduler.Config).RegisterFlags(fs) },
	"exchange-worker":   func(fs *flag.FlagSet) { new(exchangeworker.Config).RegisterFlags(fs) },
	"salesforce-worker": func(fs *flag.FlagSet) { new(salesforceworker.Config).RegisterFlags(fs) },
	"reconciler":        func(fs *flag.FlagSet) { new(reconciler.Config).RegisterFlags(fs) },
	"status-api":        func(fs *flag.FlagSet) { new(statusapi.Config).RegisterFlags(fs) },
}

// What a stopping service may take beyond its --drain-delay, --stop-timeout and --stop-grace:
// the health server's shutdown and the platform's close of NATS, Redis and telemetry.
const (
	healthServerShutdown = 5 * time.Second
	platformClose        = 10 * time.Second
	// graceSlack is what the grace period must leave beyond the worst case.
	graceSlack = 5 * time.Second
)

// object is one rendered object: its kind and name, and the typed value it decoded into.
type object struct {
	kind, name string
	value      any
}

func (o object) String() string { return o.kind + "/" + o.name }

// rendered is an overlay's objects, by kind.
type rendered struct {
	byKind     map[string][]object
	secretKeys map[string][]string // Secrets the overlay generates, with their keys
	workloads  []workload          // the Deployments and StatefulSets
}

func (r *rendered) find(kind, name string) (object, bool) {
	for _, o := range r.byKind[kind] {
		if o.name == name {
			return o, true
		}
	}
	return object{}, false
}

// Minimal types of the custom resources the overlays use, for strict decoding: a misspelt field
// of these fails the test as it would fail validation against the installed CRDs.
type (
	scaledObject struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			ScaleTargetRef struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Name       string `json:"name"`
			} `json:"scaleTargetRef"`
			MinReplicaCount *int32 `json:"minReplicaCount"`
			MaxReplicaCount *int32 `json:"maxReplicaCount"`
			PollingInterval *int32 `json:"pollingInterval"`
			CooldownPeriod  *int32 `json:"cooldownPeriod"`
			Advanced        struct {
				HorizontalPodAutoscalerConfig struct {
					Behavior map[string]any `json:"behavior"`
				} `json:"horizontalPodAutoscalerConfig"`
			} `json:"advanced"`
			Triggers []struct {
				Type     string            `json:"type"`
				Metadata map[string]string `json:"metadata"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	serviceMonitor struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port     string `json:"port"`
				Path     string `json:"path"`
				Interval string `json:"interval"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	prometheusRule struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					For         string            `json:"for"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
)

// types are the kinds an overlay may hold, each decoded strictly into its type.
var types = map[string]func() any{
	"Namespace":           func() any { return new(corev1.Namespace) },
	"ConfigMap":           func() any { return new(corev1.ConfigMap) },
	"Secret":              func() any { return new(corev1.Secret) },
	"Service":             func() any { return new(corev1.Service) },
	"ServiceAccount":      func() any { return new(corev1.ServiceAccount) },
	"Deployment":          func() any { return new(appsv1.Deployment) },
	"StatefulSet":         func() any { return new(appsv1.StatefulSet) },
	"PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
	"NetworkPolicy":       func() any { return new(networkingv1.NetworkPolicy) },
	"ScaledObject":        func() any { return new(scaledObject) },
	"ServiceMonitor":      func() any { return new(serviceMonitor) },
	"PrometheusRule":      func() any { return new(prometheusRule) },
}

func render(t *testing.T, dir string) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := &rendered{byKind: map[string][]object{}, secretKeys: map[string][]string{}}
	for _, res := range resMap.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", res.CurId(), err)
		}
		j, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatalf("%s: %v", res.CurId(), err)
		}
		kind, name := res.GetKind(), res.GetName()
		newT, ok := types[kind]
		if !ok {
			t.Errorf("%s/%s: a kind this test does not know; add its type", kind, name)
			continue
		}
		v := newT()
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s/%s does not decode strictly: %v", kind, name, err)
			continue
		}
		if ns := res.GetNamespace(); kind != "Namespace" && ns != "tandem" {
			t.Errorf("%s/%s is in namespace %q, not tandem", kind, name, ns)
		}
		o := object{kind: kind, name: name, value: v}
		out.byKind[kind] = append(out.byKind[kind], o)
		if s, ok := v.(*corev1.Secret); ok {
			out.secretKeys[name] = slices.Collect(maps.Keys(s.Data))
		}
	}
	out.workloads = workloads(out)
	return out
}

// workload is a Deployment's or StatefulSet's pod template with what the checks need.
type workload struct {
	object
	replicas *int32
	selector *metav1.LabelSelector
	template corev1.PodTemplateSpec
}

func workloads(r *rendered) []workload {
	var out []workload
	for _, o := range r.byKind["Deployment"] {
		d := o.value.(*appsv1.Deployment)
		out = append(out, workload{o, d.Spec.Replicas, d.Spec.Selector, d.Spec.Template})
	}
	for _, o := range r.byKind["StatefulSet"] {
		s := o.value.(*appsv1.StatefulSet)
		out = append(out, workload{o, s.Spec.Replicas, s.Spec.Selector, s.Spec.Template})
	}
	return out
}

func TestOverlays(t *testing.T) {
	for dir, external := range overlays {
		t.Run(strings.TrimPrefix(dir, "k8s/overlays/"), func(t *testing.T) {
			r := render(t, dir)
			checkNamespace(t, r)
			checkPodSecurity(t, r)
			checkSelectors(t, r)
			checkReferences(t, r, external)
			checkServiceSettings(t, r, external)
			checkAPIAccess(t, r, external)
			checkAvailability(t, r)
			checkImages(t, r)
		})
	}
}

func checkNamespace(t *testing.T, r *rendered) {
	ns, ok := r.find("Namespace", "tandem")
	if !ok {
		t.Fatal("no Namespace tandem")
	}
	l := ns.value.(*corev1.Namespace).Labels
	for _, mode := range []string{"enforce", "audit", "warn"} {
		if got := l["pod-security.kubernetes.io/"+mode]; got != "restricted" {
			t.Errorf("namespace label pod-security.kubernetes.io/%s = %q, want restricted", mode, got)
		}
	}
}

func checkPodSecurity(t *testing.T, r *rendered) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	for _, w := range r.workloads {
		spec := w.template.Spec
		for _, res := range eval.EvaluatePod(lv, &w.template.ObjectMeta, &spec) {
			if !res.Allowed {
				t.Errorf("%s fails restricted: %s: %s", w, res.ForbiddenReason, res.ForbiddenDetail)
			}
		}
		if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
			t.Errorf("%s: enableServiceLinks is not false", w)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: the pod automounts a service account token", w)
		}
		if spec.ServiceAccountName == "" || spec.ServiceAccountName == "default" {
			t.Errorf("%s: runs as the default service account", w)
		} else if _, ok := r.find("ServiceAccount", spec.ServiceAccountName); !ok {
			t.Errorf("%s: service account %s is not in the overlay", w, spec.ServiceAccountName)
		}
		for _, c := range spec.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: container %s has a writable root filesystem", w, c.Name)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: container %s has no memory limit", w, c.Name)
			}
		}
	}
}

func matches(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(l))
}

// selected returns the workloads whose pods sel selects.
func selected(r *rendered, sel *metav1.LabelSelector) []workload {
	var out []workload
	for _, w := range r.workloads {
		if matches(sel, w.template.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func hasPort(ports []corev1.ContainerPort, name string, number int32) bool {
	for _, p := range ports {
		if (name != "" && p.Name == name) || (name == "" && p.ContainerPort == number) {
			return true
		}
	}
	return false
}

func checkSelectors(t *testing.T, r *rendered) {
	for _, w := range r.workloads {
		if !matches(w.selector, w.template.Labels) {
			t.Errorf("%s: selector %v does not select its own pod labels %v", w, w.selector, w.template.Labels)
		}
		for _, c := range w.template.Spec.Containers {
			for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
				if p == nil || p.HTTPGet == nil {
					continue
				}
				if !hasPort(c.Ports, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal) {
					t.Errorf("%s: container %s probes port %s, which it does not declare", w, c.Name, p.HTTPGet.Port.String())
				}
			}
		}
	}
	for _, o := range r.byKind["Service"] {
		svc := o.value.(*corev1.Service)
		ws := selected(r, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
		if len(ws) == 0 {
			t.Errorf("%s selects no pods", o)
			continue
		}
		for _, p := range svc.Spec.Ports {
			for _, w := range ws {
				found := false
				for _, c := range w.template.Spec.Containers {
					found = found || hasPort(c.Ports, p.TargetPort.StrVal, p.TargetPort.IntVal)
				}
				if !found {
					t.Errorf("%s: port %s targets %s, which %s does not declare", o, p.Name, p.TargetPort.String(), w)
				}
			}
		}
	}
	for _, o := range r.byKind["PodDisruptionBudget"] {
		if len(selected(r, o.value.(*policyv1.PodDisruptionBudget).Spec.Selector)) == 0 {
			t.Errorf("%s selects no pods", o)
		}
	}
	for _, o := range r.byKind["NetworkPolicy"] {
		sel := o.value.(*networkingv1.NetworkPolicy).Spec.PodSelector
		if len(sel.MatchLabels)+len(sel.MatchExpressions) > 0 && len(selected(r, &sel)) == 0 {
			t.Errorf("%s selects no pods", o)
		}
	}
	for _, o := range r.byKind["ServiceMonitor"] {
		sm := o.value.(*serviceMonitor)
		var svcs []*corev1.Service
		for _, so := range r.byKind["Service"] {
			if svc := so.value.(*corev1.Service); matches(&sm.Spec.Selector, svc.Labels) {
				svcs = append(svcs, svc)
			}
		}
		if len(svcs) == 0 {
			t.Errorf("%s selects no Service", o)
		}
		for _, ep := range sm.Spec.Endpoints {
			for _, svc := range svcs {
				if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					t.Errorf("%s: Service %s has no port %q", o, svc.Name, ep.Port)
				}
			}
		}
	}
}

// checkReferences checks that every ConfigMap and Secret a pod uses exists, in the overlay or
// among the Secrets the overlay documents as created beforehand, with the keys used.
func checkReferences(t *testing.T, r *rendered, external map[string][]string) {
	secretHas := func(name, key string) bool {
		if keys, ok := r.secretKeys[name]; ok {
			return key == "" || slices.Contains(keys, key)
		}
		keys, ok := external[name]
		return ok && (key == "" || slices.Contains(keys, key))
	}
	configHas := func(name, key string) bool {
		o, ok := r.find("ConfigMap", name)
		if !ok {
			return false
		}
		_, has := o.value.(*corev1.ConfigMap).Data[key]
		return key == "" || has
	}
	for _, w := range r.workloads {
		spec := w.template.Spec
		for _, v := range spec.Volumes {
			if v.Secret != nil && !secretHas(v.Secret.SecretName, "") {
				t.Errorf("%s: volume %s uses Secret %s, which is neither in the overlay nor documented", w, v.Name, v.Secret.SecretName)
			}
			if v.Secret != nil {
				for _, it := range v.Secret.Items {
					if !secretHas(v.Secret.SecretName, it.Key) {
						t.Errorf("%s: volume %s uses key %s of Secret %s, which it does not hold", w, v.Name, it.Key, v.Secret.SecretName)
					}
				}
			}
			if v.ConfigMap != nil && !configHas(v.ConfigMap.Name, "") {
				t.Errorf("%s: volume %s uses ConfigMap %s, which is not in the overlay", w, v.Name, v.ConfigMap.Name)
			}
		}
		for _, c := range spec.Containers {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && !configHas(ef.ConfigMapRef.Name, "") {
					t.Errorf("%s: envFrom ConfigMap %s is not in the overlay", w, ef.ConfigMapRef.Name)
				}
				if ef.SecretRef != nil && !secretHas(ef.SecretRef.Name, "") {
					t.Errorf("%s: envFrom Secret %s is neither in the overlay nor documented", w, ef.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if s := e.ValueFrom.SecretKeyRef; s != nil && !secretHas(s.Name, s.Key) {
					t.Errorf("%s: %s reads key %s of Secret %s, which is neither in the overlay nor documented", w, e.Name, s.Key, s.Name)
				}
				if cm := e.ValueFrom.ConfigMapKeyRef; cm != nil && !configHas(cm.Name, cm.Key) {
					t.Errorf("%s: %s reads key %s of ConfigMap %s, which does not hold it", w, e.Name, cm.Key, cm.Name)
				}
			}
		}
	}
}

// environment returns the variables a container gets, with their values where the overlay
// knows them (ConfigMaps, literal values); Secrets' values are not known ("").
func environment(r *rendered, external map[string][]string, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if o, ok := r.find("ConfigMap", ef.ConfigMapRef.Name); ok {
				maps.Copy(env, o.value.(*corev1.ConfigMap).Data)
			}
		}
		if ef.SecretRef != nil {
			keys, ok := r.secretKeys[ef.SecretRef.Name]
			if !ok {
				keys = external[ef.SecretRef.Name]
			}
			for _, k := range keys {
				env[k] = ""
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// checkServiceSettings checks each service's environment against the settings the service
// accepts, and its pod's grace period against the longest shutdown those settings allow.
func checkServiceSettings(t *testing.T, r *rendered, external map[string][]string) {
	seen := map[string]bool{}
	for _, o := range r.byKind["Deployment"] {
		d := o.value.(*appsv1.Deployment)
		c := d.Spec.Template.Spec.Containers[0]
		if c.Image != "ghcr.io/tandem-sync/tandem:"+imageTag(c.Image) || len(c.Command) != 1 {
			continue // not a Tandem service
		}
		name := strings.TrimPrefix(c.Command[0], "/usr/local/bin/")
		register, ok := services[name]
		if !ok {
			t.Errorf("%s runs %s, which is not a Tandem service", o, c.Command[0])
			continue
		}
		seen[name] = true
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		register(fs)
		env := environment(r, external, c)
		var environ []string
		for k, v := range env {
			if !strings.HasPrefix(k, platform.EnvPrefix) {
				continue
			}
			// One ConfigMap serves every service: a variable of another service is accepted
			// (and ignored), one that no Tandem service knows would stop the pod.
			if !slices.Contains(platform.Variables(), k) {
				t.Errorf("%s: %s is not a setting of any Tandem service (%s accepts %s)", o, k, name, strings.Join(settings.Known(fs, platform.EnvPrefix), ", "))
				continue
			}
			if v != "" {
				environ = append(environ, k+"="+v)
			}
		}
		if err := settings.Parse(fs, nil, environ, platform.EnvPrefix, settings.AlsoKnown(platform.Variables())); err != nil {
			t.Errorf("%s: %v", o, err)
			continue
		}
		worst := healthServerShutdown + platformClose
		for _, f := range []string{"drain-delay", "stop-timeout", "stop-grace"} {
			worst += fs.Lookup(f).Value.(flag.Getter).Get().(time.Duration)
		}
		grace := time.Duration(ptrOr(d.Spec.Template.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
		if grace < worst+graceSlack {
			t.Errorf("%s: terminationGracePeriodSeconds %s is shorter than the worst-case shutdown %s plus %s", o, grace, worst, graceSlack)
		}
		if _, ok := env["GOMEMLIMIT"]; !ok {
			t.Errorf("%s: no GOMEMLIMIT under the memory limit", o)
		}
	}
	for name := range services {
		if !seen[name] {
			t.Errorf("no Deployment runs %s", name)
		}
	}
}

// checkAPIAccess checks that the status-api's settings pass its own validation (TLS, not plain
// text) and that its certificate, key and operator token are files of mounted Secrets.
func checkAPIAccess(t *testing.T, r *rendered, external map[string][]string) {
	o, ok := r.find("Deployment", "status-api")
	if !ok {
		t.Fatal("no status-api Deployment")
	}
	spec := o.value.(*appsv1.Deployment).Spec.Template.Spec
	c := spec.Containers[0]
	env := environment(r, external, c)
	cfg := statusapi.Config{}
	fs := flag.NewFlagSet("status-api", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	var environ []string
	for k, v := range env {
		if strings.HasPrefix(k, platform.EnvPrefix) && v != "" {
			environ = append(environ, k+"="+v)
		}
	}
	if err := settings.Parse(fs, nil, environ, platform.EnvPrefix, settings.AlsoKnown(platform.Variables())); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: the API's settings do not validate: %v", o, err)
	}
	if cfg.Plaintext {
		t.Errorf("%s serves the API without TLS", o)
	}
	secretVolumes := map[string]string{}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = v.Secret.SecretName
		}
	}
	for _, file := range []string{cfg.TLSCert, cfg.TLSKey, cfg.OperatorTokenFile} {
		mounted := false
		for _, m := range c.VolumeMounts {
			if _, secret := secretVolumes[m.Name]; secret && strings.HasPrefix(file, m.MountPath+"/") {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("%s: %q is not a file of a mounted Secret", o, file)
		}
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func imageTag(image string) string {
	if _, digest, ok := strings.Cut(image, "@"); ok {
		return "@" + digest
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return ""
}

// checkAvailability checks that what runs more than one pod survives disruptions: a
// PodDisruptionBudget and topology spread for every multi-replica workload, and no fixed
// replica count where an autoscaler owns it.
func checkAvailability(t *testing.T, r *rendered) {
	scaled := map[string]bool{}
	for _, o := range r.byKind["ScaledObject"] {
		so := o.value.(*scaledObject)
		ref := so.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" {
			t.Errorf("%s scales a %s", o, ref.Kind)
			continue
		}
		if _, ok := r.find("Deployment", ref.Name); !ok {
			t.Errorf("%s scales Deployment %s, which is not in the overlay", o, ref.Name)
		}
		scaled[ref.Name] = true
		if len(so.Spec.Triggers) == 0 {
			t.Errorf("%s has no triggers", o)
		}
		for _, tr := range so.Spec.Triggers {
			if tr.Type == "cpu" || tr.Type == "memory" {
				t.Errorf("%s scales on %s, not on work", o, tr.Type)
			}
		}
	}
	for _, w := range r.workloads {
		if scaled[w.name] && w.replicas != nil {
			t.Errorf("%s sets replicas while a ScaledObject owns them: every apply would reset them", w)
		}
		multi := scaled[w.name] || ptrOr(w.replicas, 1) > 1
		if !multi {
			continue
		}
		if len(w.template.Spec.TopologySpreadConstraints) == 0 {
			t.Errorf("%s runs several pods without topology spread", w)
		}
		covered := false
		for _, o := range r.byKind["PodDisruptionBudget"] {
			covered = covered || matches(o.value.(*policyv1.PodDisruptionBudget).Spec.Selector, w.template.Labels)
		}
		if !covered {
			t.Errorf("%s runs several pods without a PodDisruptionBudget", w)
		}
	}
}

func checkImages(t *testing.T, r *rendered) {
	for _, w := range r.workloads {
		for _, c := range w.template.Spec.Containers {
			if tag := imageTag(c.Image); tag == "" || tag == "latest" {
				t.Errorf("%s: container %s runs image %q without a version", w, c.Name, c.Image)
			}
		}
	}
}

// TestBaseHasNoInfrastructure keeps the base what its kustomization says it is: the services
// only, with neither NATS nor Redis nor an image tag, which the overlays choose.
func TestBaseHasNoInfrastructure(t *testing.T) {
	r := render(t, "k8s/base")
	for _, w := range r.workloads {
		if w.kind != "Deployment" {
			t.Errorf("the base holds %s", w)
		}
		if tag := imageTag(w.template.Spec.Containers[0].Image); tag != "" {
			t.Errorf("the base pins %s to %s; the overlays choose the version", w, tag)
		}
	}
	if got := len(r.byKind["Deployment"]); got != len(services) {
		t.Errorf("the base has %d Deployments, want one per service (%d)", got, len(services))
	}
}
