"""The MLflow UI over one tuning study's training runs, in headless Chromium (the check the issue
asks for, by hand: it needs a study's runs on a tracking server). Opens MLflow's compare page for
the runs tagged `vaebench.tune.study = STUDY`, shows train.batch_size and train.lr against the
last val_loss in its parallel-coordinates plot, and screenshots it and the scatter plot.

    eval "$(vaebench team env | grep '^export')"
    python bench/tune_ui.py eq20 docs/images/tune-mlflow    # -> ...-compare.png, ...-scatter.png
"""

import json
import os
import shutil
import sys
import urllib.parse

from mlflow.tracking import MlflowClient
from playwright.sync_api import sync_playwright

study, out = sys.argv[1], sys.argv[2]
uri = os.environ["MLFLOW_TRACKING_URI"]
client = MlflowClient()
exp = client.get_experiment_by_name("vaebench")
runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`vaebench.tune.study` = '{study}'")
print(len(runs), "trial runs")
ids = json.dumps([r.info.run_id for r in runs])
experiments = urllib.parse.quote(json.dumps([exp.experiment_id]))
url = f"{uri}/#/compare-runs?runs={urllib.parse.quote(ids)}&experiments={experiments}"
creds = {"username": os.environ["MLFLOW_TRACKING_USERNAME"], "password": os.environ["MLFLOW_TRACKING_PASSWORD"]}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
    page = browser.new_context(http_credentials=creds, viewport={"width": 1400, "height": 1100}).new_page()
    page.goto(url)
    page.get_by_text("Parallel Coordinates Plot").first.wait_for(timeout=90_000)
    page.get_by_text("train.lr").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    selects = page.locator(".du-bois-light-select-multiple")
    params, metrics = selects.nth(0), selects.nth(1)
    params.locator(".du-bois-light-select-selection-item-remove").first.click()  # the seed: the trial's number
    metrics.locator(".du-bois-light-select-selection-item-remove").first.click()
    metrics.locator("input").first.click()
    page.keyboard.type("val_loss")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.wait_for_timeout(3000)
    page.screenshot(path=out + "-compare.png", full_page=False)
    page.get_by_text("Scatter Plot", exact=True).first.click()
    page.wait_for_timeout(3000)
    page.screenshot(path=out + "-scatter.png", full_page=False)
    browser.close()
print("ok")
