import assert from "node:assert/strict";
import { closestMatch, editDistance } from "../../agent/core/did_you_mean.ts";

Deno.test("editDistance() and closestMatch() find likely typos and nothing for unrelated words", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(closestMatch("yolo5", ["yolo", "hunyuan-video-i2v"]), "yolo");
  assert.equal(closestMatch("hunyuan-video", ["yolo", "hunyuan-video-i2v"]), "hunyuan-video-i2v");
  assert.equal(closestMatch("stable-diffusion", ["yolo", "morphic-frames-to-video"]), null);
  assert.equal(closestMatch("anything", []), null);
});
