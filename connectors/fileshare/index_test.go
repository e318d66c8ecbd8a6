package fileshare_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wxhub/wxhub/connectors/fileshare"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC) // a Monday

func testIndex() *fileshare.Index {
	x := fileshare.NewIndex()
	for i, p := range []string{
		"销售部/周报/销售周报-第46周.xlsx",
		"销售部/周报/销售周报-第47周.xlsx",
		"法务/合同模板.docx",
		"法务/采购合同-华东.docx",
		"行政/员工手册2026.pdf",
		"财务/报销制度.pdf",
		"销售部/客户名单.xlsx",
	} {
		x.Put(fileshare.Entry{Source: "share", Path: p, Size: 100, ModTime: t0.Add(time.Duration(i) * time.Hour)})
	}
	return x
}

func paths(hits []fileshare.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Path)
	}
	return out
}

func TestSearch(t *testing.T) {
	x := testIndex()
	tests := []struct {
		name  string
		given string
		want  []string // best first
	}{
		{name: "exact name", given: "合同模板", want: []string{"法务/合同模板.docx"}},
		{name: "command and filler", given: "找一下合同模板", want: []string{"法务/合同模板.docx"}},
		{name: "substring, newest first", given: "销售周报", want: []string{"销售部/周报/销售周报-第47周.xlsx", "销售部/周报/销售周报-第46周.xlsx"}},
		{name: "pinyin initials", given: "xszb", want: []string{"销售部/周报/销售周报-第47周.xlsx", "销售部/周报/销售周报-第46周.xlsx"}},
		{name: "pinyin full", given: "hetongmuban", want: []string{"法务/合同模板.docx"}},
		{name: "path", given: "法务", want: []string{"法务/采购合同-华东.docx", "法务/合同模板.docx"}},
		{name: "two terms", given: "合同 华东", want: []string{"法务/采购合同-华东.docx"}},
		{name: "fuzzy pairs", given: "员工手册", want: []string{"行政/员工手册2026.pdf"}},
		{name: "words in another order", given: "制度报销", want: []string{"财务/报销制度.pdf"}},
		{name: "prefix before substring", given: "合同", want: []string{"法务/合同模板.docx", "法务/采购合同-华东.docx"}},
		{name: "pinyin with a polyphone's first reading", given: "hetongmoban", want: []string{"法务/合同模板.docx"}},
		{name: "nothing", given: "工资条", want: nil},
		{name: "empty", given: "找", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := paths(x.Search(tc.given, nil, 0))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Search(%q) = %q, want %q", tc.given, got, tc.want)
			}
		})
	}
}

// The index saved to disk comes back whole: a restart needs no full rescan.
func TestIndexSaveLoad(t *testing.T) {
	x := testIndex()
	file := filepath.Join(t.TempDir(), "index.json.gz")
	if err := x.Save(file, t0); err != nil {
		t.Fatal(err)
	}
	y, err := fileshare.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if y.Len() != x.Len() {
		t.Fatalf("loaded %d entries, want %d", y.Len(), x.Len())
	}
	if got := paths(y.Search("xszb", nil, 1)); len(got) != 1 || got[0] != "销售部/周报/销售周报-第47周.xlsx" {
		t.Fatalf("search after load = %q", got)
	}
	if _, err := fileshare.Load(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Fatalf("missing snapshot: %v", err)
	}
}

var words = []string{"销售", "周报", "合同", "模板", "财务", "报表", "会议", "纪要", "项目", "计划", "采购", "订单", "客户", "名单", "人事", "制度", "预算", "审批", "发票", "工资"}

// benchIndex holds n generated names in nested departments.
func benchIndex(n int) *fileshare.Index {
	r := rand.New(rand.NewPCG(1, 2))
	x := fileshare.NewIndex()
	for i := range n {
		name := words[r.IntN(len(words))] + words[r.IntN(len(words))] + fmt.Sprintf("-%d", i) + ".docx"
		dir := fmt.Sprintf("部门%d/%s/%d", i%37, words[i%len(words)], i%11)
		x.Put(fileshare.Entry{Source: "s", Path: dir + "/" + name, Size: 1, ModTime: t0.Add(time.Duration(i) * time.Second)})
	}
	return x
}

// cpuTime is the process's user+system CPU time: on a machine shared with
// other work, wall time per op says more about the neighbours than the code,
// so the benchmarks also report CPU ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkIndexBuild100k(b *testing.B) {
	start := cpuTime()
	for b.Loop() {
		x := benchIndex(100_000)
		x.Search("x", nil, 1) // the scan list is part of the build
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func BenchmarkQuery100k(b *testing.B) {
	x := benchIndex(100_000)
	for _, q := range []string{"销售周报", "xszb", "合同 模板", "工资发票-99999"} {
		b.Run(q, func(b *testing.B) {
			x.Search(q, nil, 5) // builds the scan list
			start := cpuTime()
			for b.Loop() {
				x.Search(q, nil, 5)
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
