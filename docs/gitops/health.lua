-- Argo CD health check for freshet.dev/TrainingPolicy (Lua 5.1, as Argo CD runs it).
-- Install it under resource.customizations.health.freshet.dev_TrainingPolicy in
-- argocd-cm (argocd-cm.yaml next to this file). It reads the same conditions
-- kstatus does, so Argo CD, Flux and `helm --wait` agree:
--   Progressing  the operator has not seen this generation yet, or the first
--                model is on its way (Reconciling=True);
--   Degraded     a person must act (Stalled=True), or the model is not getting
--                fresher (Degraded=True: rolled back, a failed or refused run);
--   Healthy      otherwise: a model serves, or nothing is due yet (no data).
local hs = {}
local function condition(obj, kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end
local function says(c)
  return (c.reason or "") .. ": " .. (c.message or "")
end

if obj.status == nil or obj.status.observedGeneration == nil
    or obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end
local stalled = condition(obj, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled)
  return hs
end
local degraded = condition(obj, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = says(degraded)
  return hs
end
local reconciling = condition(obj, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = says(reconciling)
  return hs
end
local ready = condition(obj, "Ready")
hs.status = "Healthy"
if ready ~= nil then
  hs.message = says(ready)
else
  hs.message = "reconciled"
end
return hs
