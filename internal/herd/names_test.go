package herd

import (
	"errors"
	"strings"
	"testing"
)

func TestNewApp(t *testing.T) {
	for name, ok := range map[string]bool{
		"app": true, "shop": true, "my-app": true, "a.b_c:d": true, "A1": true,
		"": false, "-app": false, ".app": false, "a@b": false, "a/b": false, "a b": false,
		"a*": false, "a..b": false, strings.Repeat("x", 65): false, "ä": false,
	} {
		_, err := NewApp(name)
		if (err == nil) != ok {
			t.Errorf("NewApp(%q): %v", name, err)
		}
		var u *UsageError
		if err != nil && !errors.As(err, &u) {
			t.Errorf("NewApp(%q) error is not a usage error: %v", name, err)
		}
	}
}

func TestResolveInstance(t *testing.T) {
	a, _ := NewApp("app")
	for ref, want := range map[string]string{
		"3": "app@3.service", "app@3": "app@3.service", "app@3.service": "app@3.service", "12": "app@12.service",
		"0": "", "-1": "", "03": "", "x": "", "shop@3": "", "app@": "", "3.5": "", "": "",
	} {
		got, err := a.ResolveInstance(ref)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("ResolveInstance(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
}

func TestUnitNames(t *testing.T) {
	a, _ := NewApp("shop")
	got := []string{a.Socket(), a.Target(), a.Template(), a.Instance(2), a.Persist(5)}
	want := []string{"shop.socket", "shop.target", "shop@.service", "shop@2.service", "shop-persist@5.service"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if a.number("shop@7.service") != 7 || a.number("shop@x.service") != 0 || a.number("app@7.service") != 0 {
		t.Fatal("number")
	}
}

func TestExtras(t *testing.T) {
	ins := []Instance{
		{Unit: "app@1.service", Number: 1, State: "active"},
		{Unit: "app@2.service", Number: 2, State: "active"},
		{Unit: "app@3.service", Number: 3, State: "activating"},
		{Unit: "app@4.service", Number: 4, State: "inactive"},
		{Unit: "app@blue.service", State: "active"},
	}
	got := extras(ins, 1)
	want := []string{"app@blue.service", "app@3.service", "app@2.service"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("extras = %q, want %q (highest first, inactive left alone)", got, want)
	}
}

func FuzzResolveInstance(f *testing.F) {
	for _, s := range []string{"3", "app@3", "app@3.service", "x", "app@../x"} {
		f.Add(s)
	}
	a, _ := NewApp("app")
	f.Fuzz(func(t *testing.T, ref string) {
		unit, err := a.ResolveInstance(ref)
		if err != nil {
			return
		}
		if a.number(unit) == 0 || !strings.HasPrefix(unit, "app@") || strings.ContainsAny(unit, "/ *?") {
			t.Fatalf("ResolveInstance(%q) = %q", ref, unit)
		}
	})
}

func TestPlacement(t *testing.T) {
	two, four := []int{0, 1}, []int{0, 1, 2, 3}
	for _, tc := range []struct {
		i, n int
		cpus []int
		want string
	}{
		{1, 1, two, "0 1"}, {1, 2, two, "0"}, {2, 2, two, "1"},
		{1, 4, two, "0"}, {2, 4, two, "1"}, {3, 4, two, "0"}, {4, 4, two, "1"},
		{1, 3, four, "0 1"}, {2, 3, four, "2"}, {3, 3, four, "3"},
		{1, 2, four, "0 1"}, {2, 2, four, "2 3"},
		{0, 2, two, ""}, {1, 0, two, ""},
		{79, 2, []int{0, 1, 4}, ""}, // sliced past the CPUs: found by FuzzPlacement
	} {
		if got := cpuString(placement(tc.i, tc.n, tc.cpus)); got != tc.want {
			t.Errorf("placement(%d, %d, %v) = %q, want %q", tc.i, tc.n, tc.cpus, got, tc.want)
		}
	}
}
