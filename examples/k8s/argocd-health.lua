-- Argo CD health check for auth.milvus.io/MilvusUser, MilvusRole and MilvusAPIKey (Lua 5.1,
-- as Argo CD runs it; the kinds report the same conditions). Install it in argocd-cm, once
-- per kind:
--   resource.customizations.health.auth.milvus.io_MilvusUser: |
--     <this file>
--   resource.customizations.health.auth.milvus.io_MilvusRole: |
--     <this file>
--   resource.customizations.health.auth.milvus.io_MilvusAPIKey: |
--     <this file>
-- Healthy once the operator wrote the credential and every proxy confirmed it (Ready=True
-- for the current generation); Degraded when the spec can never work (Stalled=True, e.g.
-- InvalidSpec or Conflict); Progressing otherwise (SecretNotFound, ProxiesPending, ...).
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for the milvus-auth operator"

if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "The operator has not seen the latest change yet"
  return hs
end

local ready = nil
local stalled = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" then
      stalled = condition
    end
  end
end

local function describe(condition)
  local text = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if ready ~= nil then
  hs.message = describe(ready)
end
return hs
