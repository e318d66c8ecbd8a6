package fileshare

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Sample share directories under the root WriteSamples fills.
const (
	SampleCompany = "company" // 公司共享: everyone
	SampleSales   = "sales"   // 销售部: department 2 (the simulator's zhangsan, wangwu)
	SampleFinance = "finance" // 财务部: department 3 (lisi, sunqi)
)

// WriteSamples writes the demo's file shares under root (created if needed):
// the sales weekly reports of the last four weeks (销售周报-第NN周.xlsx, each
// dated the Friday of its week), a contract template, the staff handbook, a
// budget only finance may see, and a product video over WeCom's 20 MB limit
// (sparse: it takes no disk space) that is offered as a link. Files hold a line
// of text, not real Office documents. Existing files are rewritten; safe to
// call at every demo start.
func WriteSamples(root string, now time.Time) error {
	type file struct {
		dir, path string
		mtime     time.Time
		size      int64 // > 0: a sparse file of this size
	}
	files := []file{
		{SampleCompany, "法务/合同模板.docx", now.AddDate(0, -2, 0), 0},
		{SampleCompany, "法务/采购合同模板-华东.docx", now.AddDate(0, -3, 0), 0},
		{SampleCompany, "行政/员工手册2026.pdf", now.AddDate(0, -1, 0), 0},
		{SampleCompany, "行政/报销制度.pdf", now.AddDate(0, -4, 0), 0},
		{SampleSales, "客户名单.xlsx", now.AddDate(0, 0, -3), 0},
		{SampleSales, "市场/产品宣传片.mp4", now.AddDate(0, 0, -10), MaxWeComFile + 1<<20},
		{SampleFinance, "2026年度预算.xlsx", now.AddDate(0, 0, -20), 0},
		{SampleFinance, "工资汇总-11月.xlsx", now.AddDate(0, 0, -2), 0},
	}
	monday := weekStart(now)
	for w := 1; w <= 4; w++ {
		friday := monday.AddDate(0, 0, -7*w+4).Add(17 * time.Hour)
		_, week := friday.ISOWeek()
		files = append(files, file{SampleSales, fmt.Sprintf("周报/销售周报-第%d周.xlsx", week), friday, 0})
	}
	for _, f := range files {
		p := filepath.Join(root, f.dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("fileshare: samples: %w", err)
		}
		var err error
		if f.size > 0 {
			err = sparse(p, f.size)
		} else {
			err = os.WriteFile(p, []byte("wxhub sample file: "+f.path+"\n"), 0o644)
		}
		if err == nil {
			err = os.Chtimes(p, f.mtime, f.mtime)
		}
		if err != nil {
			return fmt.Errorf("fileshare: samples: %w", err)
		}
	}
	return nil
}

func sparse(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	return firstErr(f.Truncate(size), f.Close())
}

// DemoSection is the connectors.fileshare section for the demo over the
// shares WriteSamples wrote under root; gateway is the hub's public address
// (links to large files). The departments are the simulator's demo corp's.
func DemoSection(root, gateway, simURL string) string {
	return fmt.Sprintf(`fileshare:
  index_path: %[1]s/index.json.gz
  sources:
    - {name: 公司共享, kind: dir, root: %[2]s, everyone: true}
    - {name: 销售部, kind: dir, root: %[3]s, departments: [2]}
    - {name: 财务部, kind: dir, root: %[4]s, departments: [3]}
  directory:            # the simulator's demo corp (the hub's directory replaces it)
    zhangsan: {departments: [1, 2], tags: [1]}
    lisi: {departments: [1, 3]}
    wangwu: {departments: [1, 2], tags: [1]}
    zhaoliu: {departments: [1, 4]}
    sunqi: {departments: [1, 3]}
    zhouba: {departments: [1, 4]}
  transcriber: {base_url: %[6]s, model: sim-whisper}   # the simulator's stand-in
  link: {base_url: %[5]s, ttl: 24h}
`, root, filepath.Join(root, SampleCompany), filepath.Join(root, SampleSales), filepath.Join(root, SampleFinance), gateway, simURL)
}
