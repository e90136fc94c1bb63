"""The paper's ImageNet-classification study (Tables 1-3, Figures 1 and 4) at a
scale a CPU runs, with one protocol for every method.

Exhibits (`StudyConfig.exhibits`; the default is table2 and exposure):

- `table2` (Figure 1 / Table 2): BN, GN and GN+WS at 32, 16, 8, 4 and 2
  images per replica, Batch Renorm at 4, and BN's error taken apart
  (`bn_error`: moving averages, precise statistics, batch statistics);
- `exposure` (beyond the paper): Figure 1 again on the same images, each
  with its own exposure and contrast;
- `table1` (Table 1 / Figure 4): BN, LN, IN and GN at 32 images per replica,
  with the training and validation error after every epoch;
- `table3` (Table 3): GN with the number of groups swept (G = 1 is LN) and
  with the channels per group swept (1 is IN), at 32 images per replica.

Every run trains the same small ResNet from scratch for the same number of
epochs, whatever its batch; the learning rate is scaled linearly with the
batch, ramped up linearly over the first epoch(s) and divided by 10 at 30%,
60% and 90% of training; weight decay is on
every weight; the last norm of each residual block starts with gamma = 0; BN
is evaluated with its moving statistics. A run shared by several exhibits
(GN at 32 images is in all three) is trained once.

`run_study(config, on_result=write_report)` appends each finished run to
`output_dir/results.json` and skips, when started again, the runs already
there: a killed study loses at most the run in progress. `write_report`
writes `report.md` (each exhibit next to the paper's numbers, with a line
per claim saying whether it holds here) and the plots `figure1.png`,
`bn_error.png`, `exposure.png`, `figure4.png` and `table3.png`.

The package's modules, by job: `config` (StudyConfig, Run, the presets),
`plan` (the runs and their schedules: `RunSchedule`), `run` (training),
`bn_error` (BN's error taken apart), `tables` (cells from results),
`report` (claims and report.md), `plots` and `paper` (the paper's
numbers).
"""

from keras_gn.study.config import EXHIBITS, FULL, LARGE_BATCH, QUICK, TABLE1_NORMS, Run, StudyConfig
from keras_gn.study.plan import RunSchedule, global_batch, learning_rates, plan, run_schedule, schedule, steps_per_epoch
from keras_gn.study.report import bn_loss_reading, claims, report_markdown, write_report
from keras_gn.study.run import load_data, run_study, train_one

__all__ = [
    "StudyConfig",
    "Run",
    "QUICK",
    "FULL",
    "EXHIBITS",
    "LARGE_BATCH",
    "TABLE1_NORMS",
    "plan",
    "run_study",
    "train_one",
    "load_data",
    "steps_per_epoch",
    "RunSchedule",
    "run_schedule",
    "global_batch",
    "learning_rates",
    "schedule",
    "write_report",
    "report_markdown",
    "claims",
    "bn_loss_reading",
]
